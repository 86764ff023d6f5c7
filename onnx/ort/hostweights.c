// The cgo shim for host weights (see hostweights.go).
#include "hostweights.h"

OrtStatus *igs_host_tensor(const OrtApi *api, void *data, size_t n,
                           const int64_t *dims, size_t ndims, int elem_type,
                           OrtValue **out) {
  OrtMemoryInfo *mi = NULL;
  OrtStatus *st = api->CreateCpuMemoryInfo(OrtDeviceAllocator,
                                           OrtMemTypeDefault, &mi);
  if (st != NULL) {
    return st;
  }
  st = api->CreateTensorWithDataAsOrtValue(
      mi, data, n, dims, ndims, (ONNXTensorElementDataType)elem_type, out);
  api->ReleaseMemoryInfo(mi);
  return st;
}

void igs_release_value(const OrtApi *api, OrtValue *v) { api->ReleaseValue(v); }


OrtStatus *igs_add_initializers(const OrtApi *api, OrtSessionOptions *so,
                                const char *const *names,
                                const OrtValue *const *values, size_t n) {
  for (size_t i = 0; i < n; i++) {
    OrtStatus *st = api->AddInitializer(so, names[i], values[i]);
    if (st != NULL) {
      return st;
    }
  }
  return NULL;
}
