// The cgo shim for views of ORT-owned tensors (see view.go).
#include "view.h"

OrtStatus *igs_view_tensor(const OrtApi *api, OrtValue *parent, size_t offset, size_t n,
                           const int64_t *dims, size_t ndims, int elem_type, OrtValue **out) {
  const OrtMemoryInfo *mi = NULL;
  OrtStatus *st = api->GetTensorMemoryInfo(parent, &mi);
  if (st != NULL) {
    return st;
  }
  void *data = NULL;
  st = api->GetTensorMutableData(parent, &data);
  if (st != NULL) {
    return st;
  }
  return api->CreateTensorWithDataAsOrtValue(mi, (char *)data + offset, n, dims, ndims,
                                             (ONNXTensorElementDataType)elem_type, out);
}

OrtStatus *igs_view_host(const OrtApi *api, void *data, size_t n, const int64_t *dims,
                         size_t ndims, int elem_type, OrtValue **out) {
  OrtMemoryInfo *mi = NULL;
  OrtStatus *st = api->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &mi);
  if (st != NULL) {
    return st;
  }
  st = api->CreateTensorWithDataAsOrtValue(mi, data, n, dims, ndims,
                                           (ONNXTensorElementDataType)elem_type, out);
  api->ReleaseMemoryInfo(mi);
  return st;
}
