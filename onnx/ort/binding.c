// The cgo shim for ORT-owned tensors and I/O binding (see binding.go).
#include "binding.h"

OrtStatus *igs_memory_infos(const OrtApi *api, const OrtSession *s, int outputs,
                            const OrtMemoryInfo **infos, size_t n) {
  if (outputs) {
    return api->SessionGetMemoryInfoForOutputs(s, infos, n);
  }
  return api->SessionGetMemoryInfoForInputs(s, infos, n);
}

int igs_memory_info_is_cpu(const OrtApi *api, const OrtMemoryInfo *mi, int *device_id) {
  OrtMemoryInfoDeviceType t = OrtMemoryInfoDeviceType_CPU;
  api->MemoryInfoGetDeviceType(mi, &t);
  int id = 0;
  OrtStatus *st = api->MemoryInfoGetId(mi, &id);
  if (st != NULL) {
    api->ReleaseStatus(st);
    id = 0;
  }
  *device_id = id;
  if (t != OrtMemoryInfoDeviceType_CPU) {
    return 0;
  }
  // Pinned host memory reports a CPU device: it is host memory too.
  return 1;
}

OrtStatus *igs_create_allocator(const OrtApi *api, const OrtSession *s,
                                const OrtMemoryInfo *mi, OrtAllocator **out) {
  return api->CreateAllocator(s, mi, out);
}

void igs_release_allocator(const OrtApi *api, OrtAllocator *a) { api->ReleaseAllocator(a); }

OrtStatus *igs_alloc_tensor(const OrtApi *api, OrtAllocator *a, const int64_t *dims,
                            size_t ndims, int elem_type, OrtValue **out) {
  return api->CreateTensorAsOrtValue(a, dims, ndims, (ONNXTensorElementDataType)elem_type, out);
}

OrtStatus *igs_tensor_data(const OrtApi *api, OrtValue *v, void **out) {
  return api->GetTensorMutableData(v, out);
}

OrtStatus *igs_tensor_is_cpu(const OrtApi *api, const OrtValue *v, int *out) {
  const OrtMemoryInfo *mi = NULL;
  OrtStatus *st = api->GetTensorMemoryInfo(v, &mi);
  if (st != NULL) {
    return st;
  }
  int id = 0;
  *out = igs_memory_info_is_cpu(api, mi, &id);
  return NULL;
}

OrtStatus *igs_copy_tensors(const OrtApi *api, const OrtValue *const *src,
                            OrtValue *const *dst, size_t n) {
  OrtEnv *env = NULL;
  // CreateEnv returns the process's existing environment with a new reference.
  OrtStatus *st = api->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "igsearch", &env);
  if (st != NULL) {
    return st;
  }
  st = api->CopyTensors(env, src, dst, NULL, n);
  api->ReleaseEnv(env);
  return st;
}

OrtStatus *igs_create_binding(const OrtApi *api, OrtSession *s, OrtIoBinding **out) {
  return api->CreateIoBinding(s, out);
}

void igs_release_binding(const OrtApi *api, OrtIoBinding *b) { api->ReleaseIoBinding(b); }

OrtStatus *igs_bind_input(const OrtApi *api, OrtIoBinding *b, const char *name,
                          const OrtValue *v) {
  return api->BindInput(b, name, v);
}

OrtStatus *igs_bind_output(const OrtApi *api, OrtIoBinding *b, const char *name,
                           const OrtValue *v) {
  return api->BindOutput(b, name, v);
}

OrtStatus *igs_bind_output_to_device(const OrtApi *api, OrtIoBinding *b,
                                     const char *name, const OrtMemoryInfo *mi) {
  return api->BindOutputToDevice(b, name, mi);
}

OrtStatus *igs_run_binding(const OrtApi *api, OrtSession *s, OrtIoBinding *b,
                           OrtValue ***values, size_t *n) {
  *values = NULL;
  *n = 0;
  OrtStatus *st = api->RunWithBinding(s, NULL, b);
  if (st != NULL) {
    return st;
  }
  st = api->SynchronizeBoundOutputs(b);
  if (st != NULL) {
    return st;
  }
  OrtAllocator *alloc = NULL;
  st = api->GetAllocatorWithDefaultOptions(&alloc);
  if (st != NULL) {
    return st;
  }
  return api->GetBoundOutputValues(b, alloc, values, n);
}

void igs_free_values(const OrtApi *api, OrtValue **values) {
  if (values == NULL) {
    return;
  }
  OrtAllocator *alloc = NULL;
  OrtStatus *st = api->GetAllocatorWithDefaultOptions(&alloc);
  if (st != NULL) {
    api->ReleaseStatus(st);
    return;
  }
  alloc->Free(alloc, values);
}

OrtStatus *igs_tensor_shape(const OrtApi *api, const OrtValue *v, int *elem,
                            int64_t *dims, size_t cap, size_t *ndims) {
  OrtTensorTypeAndShapeInfo *info = NULL;
  OrtStatus *st = api->GetTensorTypeAndShape(v, &info);
  if (st != NULL) {
    return st;
  }
  ONNXTensorElementDataType t;
  st = api->GetTensorElementType(info, &t);
  if (st == NULL) {
    *elem = (int)t;
    st = api->GetDimensionsCount(info, ndims);
  }
  if (st == NULL && *ndims <= cap) {
    st = api->GetDimensions(info, dims, *ndims);
  }
  api->ReleaseTensorTypeAndShapeInfo(info);
  return st;
}
