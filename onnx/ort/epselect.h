// The cgo shim for execution-provider device selection (see epselect.go).
// Every name is prefixed igs_ so that it cannot collide with onnxruntime_go's
// own C wrapper, which links into the same binary.
#ifndef IGSEARCH_ORT_EPSELECT_H
#define IGSEARCH_ORT_EPSELECT_H

#include <stddef.h>
#include <stdint.h>

#include "onnxruntime_c_api.h"

// igs_api returns the OrtApi (version ORT_API_VERSION) of the ONNX Runtime
// library at path, which must already be loaded in the process. On failure
// it returns NULL and writes a message into err (n bytes).
const OrtApi *igs_api(const char *path, char *err, size_t n);

// igs_status_message copies st's message into err, releases st and returns
// its error code. st must not be NULL.
int igs_status_message(const OrtApi *api, OrtStatus *st, char *err, size_t n);

// igs_acquire_env returns the process-wide OrtEnv: CreateEnv returns the
// instance that already exists (onnxruntime_go's), adding a reference, which
// igs_release_env drops.
OrtStatus *igs_acquire_env(const OrtApi *api, OrtEnv **env);
void igs_release_env(const OrtApi *api, OrtEnv *env);

OrtStatus *igs_ep_devices(const OrtApi *api, const OrtEnv *env,
                          const OrtEpDevice *const **devices, size_t *n);

// igs_ep_device describes one OrtEpDevice; the strings and key-value pairs
// are owned by the environment.
typedef struct {
  const char *ep_name;
  const char *ep_vendor;
  const OrtKeyValuePairs *ep_metadata;
  const OrtKeyValuePairs *ep_options;
  int hw_type;  // OrtHardwareDeviceType
  uint32_t hw_vendor_id;
  uint32_t hw_device_id;
  const char *hw_vendor;
  const OrtKeyValuePairs *hw_metadata;
} igs_ep_device;

void igs_describe(const OrtApi *api, const OrtEpDevice *d, igs_ep_device *out);

// igs_kv returns the entries of kvps (NULL kvps: no entries).
void igs_kv(const OrtApi *api, const OrtKeyValuePairs *kvps,
            const char *const **keys, const char *const **values, size_t *n);

OrtStatus *igs_append_v2(const OrtApi *api, OrtSessionOptions *so, OrtEnv *env,
                         const OrtEpDevice *device, const char *const *keys,
                         const char *const *values, size_t n);

// igs_register_cpu_arena registers with env one CPU arena allocator that
// grows by exactly the requested size; sessions with the config entry
// session.use_env_allocators=1 share it.
OrtStatus *igs_register_cpu_arena(const OrtApi *api, OrtEnv *env);

// igs_can_load reports whether the dynamic loader finds and loads the shared
// library name (dlopen RTLD_LAZY, then dlclose).
int igs_can_load(const char *name);

#endif
