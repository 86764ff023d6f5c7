// The cgo shim that reads which execution provider each node of a session
// got (see placement.go).
#include "placement.h"

OrtStatus *igs_ep_subgraphs(const OrtApi *api, const OrtSession *s,
                            const OrtEpAssignedSubgraph *const **out, size_t *n) {
  *out = NULL;
  *n = 0;
  return api->Session_GetEpGraphAssignmentInfo(s, out, n);
}

OrtStatus *igs_ep_subgraph(const OrtApi *api, const OrtEpAssignedSubgraph *const *sgs,
                           size_t i, const char **ep,
                           const OrtEpAssignedNode *const **nodes, size_t *n) {
  *ep = NULL;
  *nodes = NULL;
  *n = 0;
  OrtStatus *st = api->EpAssignedSubgraph_GetEpName(sgs[i], ep);
  if (st != NULL) {
    return st;
  }
  return api->EpAssignedSubgraph_GetNodes(sgs[i], nodes, n);
}

OrtStatus *igs_ep_node(const OrtApi *api, const OrtEpAssignedNode *const *nodes, size_t i,
                       const char **name, const char **domain, const char **op) {
  *name = NULL;
  *domain = NULL;
  *op = NULL;
  OrtStatus *st = api->EpAssignedNode_GetName(nodes[i], name);
  if (st == NULL) {
    st = api->EpAssignedNode_GetDomain(nodes[i], domain);
  }
  if (st == NULL) {
    st = api->EpAssignedNode_GetOperatorType(nodes[i], op);
  }
  return st;
}
