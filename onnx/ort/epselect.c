// The cgo shim for execution-provider device selection (see epselect.go).
#include "epselect.h"

#include <dlfcn.h>
#include <stdio.h>

typedef const OrtApiBase *(*igs_get_api_base)(void);

const OrtApi *igs_api(const char *path, char *err, size_t n) {
  // RTLD_NOLOAD: only find the library onnxruntime_go already loaded; it
  // returns the same handle (with a reference we keep: the library stays
  // loaded for the life of the process anyway).
  void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (h == NULL) {
    const char *e = dlerror();
    snprintf(err, n, "%s is not loaded in this process: %s", path,
             e ? e : "dlopen(RTLD_NOLOAD) failed");
    return NULL;
  }
  igs_get_api_base get = (igs_get_api_base)dlsym(h, "OrtGetApiBase");
  if (get == NULL) {
    snprintf(err, n, "%s has no OrtGetApiBase", path);
    return NULL;
  }
  const OrtApiBase *base = get();
  const OrtApi *api = base ? base->GetApi(ORT_API_VERSION) : NULL;
  if (api == NULL) {
    snprintf(err, n, "ONNX Runtime %s at %s does not serve C API version %d",
             base ? base->GetVersionString() : "(unknown)", path,
             ORT_API_VERSION);
    return NULL;
  }
  return api;
}

int igs_status_message(const OrtApi *api, OrtStatus *st, char *err, size_t n) {
  int code = (int)api->GetErrorCode(st);
  snprintf(err, n, "%s", api->GetErrorMessage(st));
  api->ReleaseStatus(st);
  return code;
}

OrtStatus *igs_acquire_env(const OrtApi *api, OrtEnv **env) {
  return api->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "igsearch", env);
}

void igs_release_env(const OrtApi *api, OrtEnv *env) { api->ReleaseEnv(env); }

OrtStatus *igs_ep_devices(const OrtApi *api, const OrtEnv *env,
                          const OrtEpDevice *const **devices, size_t *n) {
  return api->GetEpDevices(env, devices, n);
}

void igs_describe(const OrtApi *api, const OrtEpDevice *d, igs_ep_device *out) {
  out->ep_name = api->EpDevice_EpName(d);
  out->ep_vendor = api->EpDevice_EpVendor(d);
  out->ep_metadata = api->EpDevice_EpMetadata(d);
  out->ep_options = api->EpDevice_EpOptions(d);
  const OrtHardwareDevice *hw = api->EpDevice_Device(d);
  out->hw_type = (int)api->HardwareDevice_Type(hw);
  out->hw_vendor_id = api->HardwareDevice_VendorId(hw);
  out->hw_device_id = api->HardwareDevice_DeviceId(hw);
  out->hw_vendor = api->HardwareDevice_Vendor(hw);
  out->hw_metadata = api->HardwareDevice_Metadata(hw);
}

void igs_kv(const OrtApi *api, const OrtKeyValuePairs *kvps,
            const char *const **keys, const char *const **values, size_t *n) {
  *keys = NULL;
  *values = NULL;
  *n = 0;
  if (kvps != NULL) {
    api->GetKeyValuePairs(kvps, keys, values, n);
  }
}

OrtStatus *igs_append_v2(const OrtApi *api, OrtSessionOptions *so, OrtEnv *env,
                         const OrtEpDevice *device, const char *const *keys,
                         const char *const *values, size_t n) {
  const OrtEpDevice *devices[1] = {device};
  return api->SessionOptionsAppendExecutionProvider_V2(so, env, devices, 1,
                                                       keys, values, n);
}

int igs_can_load(const char *name) {
  void *h = dlopen(name, RTLD_LAZY | RTLD_LOCAL);
  if (h == NULL) {
    return 0;
  }
  dlclose(h);
  return 1;
}

OrtStatus *igs_register_cpu_arena(const OrtApi *api, OrtEnv *env) {
  // arena_extend_strategy 1 is kSameAsRequested: each extension is the size
  // asked for, not the next power of two.
  const char *keys[] = {"arena_extend_strategy"};
  size_t values[] = {1};
  OrtArenaCfg *cfg = NULL;
  OrtStatus *st = api->CreateArenaCfgV2(keys, values, 1, &cfg);
  if (st != NULL) return st;
  OrtMemoryInfo *mi = NULL;
  st = api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mi);
  if (st == NULL) {
    st = api->CreateAndRegisterAllocator(env, mi, cfg);
    api->ReleaseMemoryInfo(mi);
  }
  api->ReleaseArenaCfg(cfg);
  return st;
}
