package ort

// This file is a small cgo shim over the parts of the ONNX Runtime C API that
// onnxruntime_go v1.27 does not wrap: listing the environment's
// execution-provider devices (OrtApi::GetEpDevices) and appending one of them
// to a session (OrtApi::SessionOptionsAppendExecutionProvider_V2). ONNX
// Runtime builds that ship an execution provider as a plugin library (the
// CUDA build from `make setup-cuda`) can only be used this way.
//
// It reaches three ONNX Runtime objects that onnxruntime_go owns:
//
//   - the OrtApi table: dlopen(Library(), RTLD_NOLOAD) returns the handle of
//     the library onnxruntime_go already loaded, and OrtGetApiBase()->GetApi
//     gives the table, as onnxruntime_go itself does;
//   - the OrtEnv: OrtApi::CreateEnv is documented to return the process's
//     existing environment (onnxruntime_go's, where the plugin was registered)
//     and ignore its arguments; the shim holds that extra reference only for
//     the duration of one selection and releases it with ReleaseEnv;
//   - the OrtSessionOptions: onnxruntime_go's SessionOptions is a struct with
//     one unexported field, o *C.OrtSessionOptions. sessionOptionsHandle reads
//     it with unsafe after checking that layout by reflection, so a change in
//     onnxruntime_go yields an error (and a failing test), not a crash.
//
// The C API headers are vendored in include/ (see include/README.md).

/*
#cgo CFLAGS: -O2 -I${SRCDIR}/include
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "epselect.h"
*/
import "C"

import (
	"debug/elf"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Execution-provider names as ONNX Runtime reports them.
const (
	cpuEP  = "CPUExecutionProvider"
	cudaEP = "CUDAExecutionProvider"
)

// EPDevice is one execution-provider device of the loaded ONNX Runtime: an
// execution provider paired with a hardware device it can run on, as
// OrtApi::GetEpDevices lists them.
type EPDevice struct {
	// EP is the execution provider's name, e.g. "CPUExecutionProvider" or
	// "CUDAExecutionProvider".
	EP string
	// EPVendor is the vendor of the execution provider, e.g. "Microsoft".
	EPVendor string
	// Hardware is the device type: "cpu", "gpu" or "npu".
	Hardware string
	// Vendor names the hardware vendor; VendorID and DeviceID are its PCI
	// IDs (0x10de is NVIDIA). DeviceID is not a CUDA ordinal: see Index.
	Vendor             string
	VendorID, DeviceID uint32
	// Index is the device's index among those of the same execution
	// provider: the provider's own ordinal when it publishes one
	// ("cuda_device_id" in its metadata or "device_id" in its default
	// options, as the CUDA provider does), else the position in the list.
	// Device{CUDA: true, ID: n} selects the CUDA device whose Index is n.
	Index int
	// Metadata and Options are the provider's metadata and default options
	// for this device.
	Metadata, Options map[string]string
}

// String describes d in one line, e.g. "CUDAExecutionProvider:0 on gpu
// (NVIDIA 0x10de:0x2330)".
func (d EPDevice) String() string {
	return fmt.Sprintf("%s:%d on %s (%s 0x%04x:0x%04x)", d.EP, d.Index, d.Hardware, d.Vendor, d.VendorID, d.DeviceID)
}

// EPDevices lists the execution-provider devices of the process-wide
// environment: the built-in CPU provider on every build, plus one entry per
// device of each registered plugin provider (the CUDA plugin registers when a
// CUDA session is first requested). It needs Init.
func EPDevices() ([]EPDevice, error) {
	var out []EPDevice
	err := withEnv(func(api *C.OrtApi, env *C.OrtEnv) error {
		ds, _, err := listEPDevices(api, env)
		out = ds
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ort: execution-provider devices: %w", err)
	}
	return out, nil
}

// shim holds the OrtApi table, looked up once after Init.
var shim struct {
	mu  sync.Mutex
	api *C.OrtApi
}

// ortAPI returns the OrtApi of the loaded library.
func ortAPI() (*C.OrtApi, error) {
	if err := ready(); err != nil {
		return nil, err
	}
	shim.mu.Lock()
	defer shim.mu.Unlock()
	if shim.api != nil {
		return shim.api, nil
	}
	lib := C.CString(Library())
	defer C.free(unsafe.Pointer(lib))
	var msg [512]C.char
	api := C.igs_api(lib, &msg[0], C.size_t(len(msg)))
	if api == nil {
		return nil, errors.New(C.GoString(&msg[0]))
	}
	shim.api = api
	return api, nil
}

// statusError converts a non-nil OrtStatus into an error and releases it.
func statusError(api *C.OrtApi, st *C.OrtStatus) error {
	if st == nil {
		return nil
	}
	var msg [1024]C.char
	code := C.igs_status_message(api, st, &msg[0], C.size_t(len(msg)))
	return fmt.Errorf("%s (ONNX Runtime error code %d)", C.GoString(&msg[0]), int(code))
}

// withEnv runs f with the process-wide OrtEnv, holding a reference to it for
// the duration: OrtEpDevice pointers are owned by the environment.
func withEnv(f func(api *C.OrtApi, env *C.OrtEnv) error) error {
	api, err := ortAPI()
	if err != nil {
		return err
	}
	var env *C.OrtEnv
	if err := statusError(api, C.igs_acquire_env(api, &env)); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	defer C.igs_release_env(api, env)
	return f(api, env)
}

// listEPDevices describes every OrtEpDevice of env, returning the
// descriptions and, in the same order, the devices themselves.
func listEPDevices(api *C.OrtApi, env *C.OrtEnv) ([]EPDevice, []*C.OrtEpDevice, error) {
	var arr **C.OrtEpDevice
	var n C.size_t
	if err := statusError(api, C.igs_ep_devices(api, env, &arr, &n)); err != nil {
		return nil, nil, fmt.Errorf("GetEpDevices: %w", err)
	}
	if n == 0 {
		return nil, nil, nil
	}
	raw := unsafe.Slice(arr, int(n))
	devs := make([]*C.OrtEpDevice, len(raw))
	copy(devs, raw)
	out := make([]EPDevice, len(devs))
	count := map[string]int{}
	for i, d := range devs {
		var c C.igs_ep_device
		C.igs_describe(api, d, &c)
		e := EPDevice{
			EP:       C.GoString(c.ep_name),
			EPVendor: C.GoString(c.ep_vendor),
			Hardware: hardwareType(int(c.hw_type)),
			Vendor:   C.GoString(c.hw_vendor),
			VendorID: uint32(c.hw_vendor_id),
			DeviceID: uint32(c.hw_device_id),
			Metadata: keyValues(api, c.ep_metadata),
			Options:  keyValues(api, c.ep_options),
		}
		e.Index = count[e.EP]
		count[e.EP]++
		for _, v := range []string{e.Metadata["cuda_device_id"], e.Options["device_id"]} {
			if k, err := strconv.Atoi(v); v != "" && err == nil && k >= 0 {
				e.Index = k
				break
			}
		}
		out[i] = e
	}
	return out, devs, nil
}

func hardwareType(t int) string {
	switch t {
	case C.OrtHardwareDeviceType_CPU:
		return "cpu"
	case C.OrtHardwareDeviceType_GPU:
		return "gpu"
	case C.OrtHardwareDeviceType_NPU:
		return "npu"
	}
	return "device type " + strconv.Itoa(t)
}

func keyValues(api *C.OrtApi, kvps *C.OrtKeyValuePairs) map[string]string {
	var keys, vals **C.char
	var n C.size_t
	C.igs_kv(api, kvps, &keys, &vals, &n)
	m := make(map[string]string, int(n))
	if n == 0 {
		return m
	}
	ks, vs := unsafe.Slice(keys, int(n)), unsafe.Slice(vals, int(n))
	for i := range ks {
		m[C.GoString(ks[i])] = C.GoString(vs[i])
	}
	return m
}

// sessionOptionsHandle returns the OrtSessionOptions inside so (see the file
// comment); it fails, rather than misreads, if onnxruntime_go's layout has
// changed.
func sessionOptionsHandle(so *ortgo.SessionOptions) (*C.OrtSessionOptions, error) {
	if err := checkSessionOptionsLayout(); err != nil {
		return nil, err
	}
	if so == nil {
		return nil, errors.New("nil session options")
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(so))
	if p == nil {
		return nil, errors.New("session options already destroyed")
	}
	return (*C.OrtSessionOptions)(p), nil
}

// checkSessionOptionsLayout checks that ortgo.SessionOptions is exactly
// struct{ o *C.OrtSessionOptions }, which sessionOptionsHandle relies on.
func checkSessionOptionsLayout() error {
	t := reflect.TypeFor[ortgo.SessionOptions]()
	if t.NumField() == 1 && t.Size() == unsafe.Sizeof(uintptr(0)) {
		f := t.Field(0)
		if f.Name == "o" && f.Offset == 0 && f.Type.Kind() == reflect.Pointer &&
			strings.Contains(f.Type.Elem().Name(), "OrtSessionOptions") {
			return nil
		}
	}
	fields := make([]string, t.NumField())
	for i := range fields {
		fields[i] = t.Field(i).Name + " " + t.Field(i).Type.String()
	}
	return fmt.Errorf("onnxruntime_go's SessionOptions is struct{%s}, not struct{o *C.OrtSessionOptions}: update onnx/ort/epselect.go for this onnxruntime_go version",
		strings.Join(fields, "; "))
}

// appendEPDevice appends to so the device of execution provider ep whose
// Index is index, with the provider options opts, through
// SessionOptionsAppendExecutionProvider_V2. The error lists the devices
// there are when none matches.
func appendEPDevice(so *ortgo.SessionOptions, ep string, index int, opts map[string]string) error {
	h, err := sessionOptionsHandle(so)
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(so)
	return withEnv(func(api *C.OrtApi, env *C.OrtEnv) error {
		descs, devs, err := listEPDevices(api, env)
		if err != nil {
			return err
		}
		var pick *C.OrtEpDevice
		var have []string
		for i, d := range descs {
			if d.EP == ep && d.Index == index {
				pick = devs[i]
				break
			}
			have = append(have, d.String())
		}
		if pick == nil {
			if len(have) == 0 {
				have = []string{"none"}
			}
			return fmt.Errorf("no %s device %d among the execution-provider devices (%s)", ep, index, strings.Join(have, ", "))
		}
		keys := make([]*C.char, 0, len(opts))
		vals := make([]*C.char, 0, len(opts))
		defer func() {
			for i := range keys {
				C.free(unsafe.Pointer(keys[i]))
				C.free(unsafe.Pointer(vals[i]))
			}
		}()
		for k, v := range opts {
			keys = append(keys, C.CString(k))
			vals = append(vals, C.CString(v))
		}
		var kp, vp **C.char
		if len(keys) > 0 {
			kp, vp = &keys[0], &vals[0]
		}
		st := C.igs_append_v2(api, h, env, pick, kp, vp, C.size_t(len(keys)))
		if err := statusError(api, st); err != nil {
			return fmt.Errorf("appending %s device %d with options %v: %w", ep, index, opts, err)
		}
		return nil
	})
}

// missingLibraries describes the shared libraries that lib needs (its ELF
// DT_NEEDED entries) and that the dynamic loader cannot find, grouped by
// where they come from, e.g. "libcudart.so.13, libcublas.so.13 (the CUDA 13
// toolkit ...), libcuda.so.1 (the NVIDIA driver ...)". It returns "" when
// none is missing or it cannot tell.
func missingLibraries(lib string) string {
	f, err := elf.Open(lib)
	if err != nil {
		return ""
	}
	needed, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		return ""
	}
	var hints []string
	byHint := map[string][]string{}
	for _, name := range needed {
		cname := C.CString(name)
		ok := C.igs_can_load(cname) != 0
		C.free(unsafe.Pointer(cname))
		if ok {
			continue
		}
		h := libraryHint(name)
		if _, seen := byHint[h]; !seen {
			hints = append(hints, h)
		}
		byHint[h] = append(byHint[h], name)
	}
	groups := make([]string, len(hints))
	for i, h := range hints {
		groups[i] = strings.Join(byHint[h], ", ") + h
	}
	return strings.Join(groups, ", ")
}

// libraryHint says where a CUDA-stack library comes from.
func libraryHint(name string) string {
	switch {
	case strings.HasPrefix(name, "libcuda.so"):
		return " (the NVIDIA driver: no GPU driver on this machine)"
	case strings.HasPrefix(name, "libcudnn"):
		return " (cuDNN 9 for CUDA 13)"
	case strings.HasPrefix(name, "libcu") || strings.HasPrefix(name, "libnv"):
		return " (the CUDA 13 toolkit or the nvidia-*-cu13 pip wheels, on LD_LIBRARY_PATH)"
	}
	return ""
}

// sharedArena registers the process-wide CPU arena (igs_register_cpu_arena)
// once; sessions opt in with session.use_env_allocators.
var sharedArena struct {
	once sync.Once
	err  error
}

func registerSharedArena() error {
	sharedArena.once.Do(func() {
		sharedArena.err = withEnv(func(api *C.OrtApi, env *C.OrtEnv) error {
			return statusError(api, C.igs_register_cpu_arena(api, env))
		})
	})
	return sharedArena.err
}
