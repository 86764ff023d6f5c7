// The cgo shim for ORT-owned tensors and I/O binding (see binding.go).
#ifndef IGSEARCH_ORT_BINDING_H
#define IGSEARCH_ORT_BINDING_H

#include <stddef.h>
#include <stdint.h>

#include "onnxruntime_c_api.h"
#include "hostweights.h"

// igs_memory_infos fills infos[0..n) with the memory info of each input
// (outputs != 0: each output) of the session; they are owned by the session.
OrtStatus *igs_memory_infos(const OrtApi *api, const OrtSession *s, int outputs,
                            const OrtMemoryInfo **infos, size_t n);

// igs_memory_info_is_cpu reports whether mi is host memory, and its device id.
int igs_memory_info_is_cpu(const OrtApi *api, const OrtMemoryInfo *mi, int *device_id);

OrtStatus *igs_create_allocator(const OrtApi *api, const OrtSession *s,
                                const OrtMemoryInfo *mi, OrtAllocator **out);
void igs_release_allocator(const OrtApi *api, OrtAllocator *a);

// igs_alloc_tensor allocates an uninitialised tensor with a.
OrtStatus *igs_alloc_tensor(const OrtApi *api, OrtAllocator *a, const int64_t *dims,
                            size_t ndims, int elem_type, OrtValue **out);

// igs_tensor_data returns the data pointer of a host tensor.
OrtStatus *igs_tensor_data(const OrtApi *api, OrtValue *v, void **out);

// igs_tensor_is_cpu reports whether v's memory is host memory.
OrtStatus *igs_tensor_is_cpu(const OrtApi *api, const OrtValue *v, int *out);

// igs_copy_tensors copies n tensors from src to dst through the execution
// providers' data transfers (OrtApi::CopyTensors with the process's env).
OrtStatus *igs_copy_tensors(const OrtApi *api, const OrtValue *const *src,
                            OrtValue *const *dst, size_t n);

OrtStatus *igs_create_binding(const OrtApi *api, OrtSession *s, OrtIoBinding **out);
void igs_release_binding(const OrtApi *api, OrtIoBinding *b);
OrtStatus *igs_bind_input(const OrtApi *api, OrtIoBinding *b, const char *name,
                          const OrtValue *v);
OrtStatus *igs_bind_output(const OrtApi *api, OrtIoBinding *b, const char *name,
                           const OrtValue *v);
OrtStatus *igs_bind_output_to_device(const OrtApi *api, OrtIoBinding *b,
                                     const char *name, const OrtMemoryInfo *mi);

// igs_run_binding runs the session on the binding, waits for its outputs,
// and returns every bound output (in binding order) in values[0..n), which
// the caller releases one by one and frees with igs_free_values.
OrtStatus *igs_run_binding(const OrtApi *api, OrtSession *s, OrtIoBinding *b,
                           OrtValue ***values, size_t *n);
void igs_free_values(const OrtApi *api, OrtValue **values);

// igs_tensor_shape reads v's element type and shape (up to cap dims; *ndims
// is the real rank).
OrtStatus *igs_tensor_shape(const OrtApi *api, const OrtValue *v, int *elem,
                            int64_t *dims, size_t cap, size_t *ndims);
#endif
