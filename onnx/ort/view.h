// The cgo shim for views of ORT-owned tensors (see view.go).
#ifndef IGSEARCH_ORT_VIEW_H
#define IGSEARCH_ORT_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "onnxruntime_c_api.h"

// igs_view_tensor makes a tensor of the given element type and dims over the
// bytes [offset, offset+n) of parent's data, in parent's memory (device
// memory too: GetTensorMutableData returns the device pointer), with no copy.
// The view does not keep parent alive.
OrtStatus *igs_view_tensor(const OrtApi *api, OrtValue *parent, size_t offset, size_t n,
                           const int64_t *dims, size_t ndims, int elem_type, OrtValue **out);

// igs_view_host makes a CPU tensor over n bytes at data (not copied, not
// owned).
OrtStatus *igs_view_host(const OrtApi *api, void *data, size_t n, const int64_t *dims,
                         size_t ndims, int elem_type, OrtValue **out);

#endif
