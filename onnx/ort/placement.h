// The cgo shim that reads which execution provider each node of a session
// got (see placement.go).
#ifndef IGSEARCH_ORT_PLACEMENT_H
#define IGSEARCH_ORT_PLACEMENT_H

#include <stddef.h>

#include "onnxruntime_c_api.h"

// igs_ep_subgraphs lists the session's EP-assigned subgraphs (owned by the
// session). It fails unless the session was created with
// session.record_ep_graph_assignment_info=1.
OrtStatus *igs_ep_subgraphs(const OrtApi *api, const OrtSession *s,
                            const OrtEpAssignedSubgraph *const **out, size_t *n);

// igs_ep_subgraph reads subgraph i's execution provider and its nodes.
OrtStatus *igs_ep_subgraph(const OrtApi *api, const OrtEpAssignedSubgraph *const *sgs,
                           size_t i, const char **ep,
                           const OrtEpAssignedNode *const **nodes, size_t *n);

// igs_ep_node reads node i's name, domain and operator type.
OrtStatus *igs_ep_node(const OrtApi *api, const OrtEpAssignedNode *const *nodes, size_t i,
                       const char **name, const char **domain, const char **op);

#endif
