// The cgo shim for weights that sessions take from host memory without a
// copy (see hostweights.go).
#ifndef IGSEARCH_ORT_HOSTWEIGHTS_H
#define IGSEARCH_ORT_HOSTWEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "onnxruntime_c_api.h"

// igs_host_tensor wraps n bytes at data (not copied, not owned) as a CPU
// OrtValue of the given element type and dims.
OrtStatus *igs_host_tensor(const OrtApi *api, void *data, size_t n,
                           const int64_t *dims, size_t ndims, int elem_type,
                           OrtValue **out);

void igs_release_value(const OrtApi *api, OrtValue *v);

// igs_add_initializers adds the n values to so as shared initializers
// (OrtApi::AddInitializer): sessions use their buffers in place.
OrtStatus *igs_add_initializers(const OrtApi *api, OrtSessionOptions *so,
                                const char *const *names,
                                const OrtValue *const *values, size_t n);

#endif
