package ort

// Views of ORT-owned tensors and of the host-weight block, for state that
// stays where the sessions use it (the trainer's weights, gradients and
// moments): a run binds a chunk of a resident tensor through a view, with
// no copy, and the host reads it only when it must (a checkpoint), metered.

/*
#cgo CFLAGS: -O2 -I${SRCDIR}/include
#include "view.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"github.com/igsearch/igsearch/onnx"
)

// View returns an ORT-owned tensor of the given shape over t's elements
// [lo, lo+n), n the shape's element count: the same memory (device memory
// for a device tensor), no copy. A flat chunk is View(lo, []int64{n}); a
// second handle on the whole tensor is View(0, t.Shape()). The view does
// not keep t alive: Destroy it first (Destroy releases the view only). Runs
// may bind it like any ORT-owned tensor; nothing crosses the boundary.
func (t *Tensor) View(lo int64, shape []int64) (*Tensor, error) {
	if !t.ORTOwned() {
		return nil, fmt.Errorf("ort: view of %s, which is in Go memory", t)
	}
	o := t.owned
	if o.v == nil {
		return nil, errors.New("ort: view of a tensor used after Destroy")
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if lo < 0 || n <= 0 || lo+n > t.NumElements() {
		return nil, fmt.Errorf("ort: view [%d, %d) of %s", lo, lo+n, t)
	}
	size := int64(t.dtype.Size())
	dims := make([]C.int64_t, len(shape)+1) // +1: never a nil pointer for scalars
	for i, d := range shape {
		dims[i] = C.int64_t(d)
	}
	var v *C.OrtValue
	st := C.igs_view_tensor(o.api, o.v, C.size_t(lo*size), C.size_t(n*size), &dims[0], C.size_t(len(shape)), C.int(t.dtype), &v)
	if err := statusError(o.api, st); err != nil {
		return nil, fmt.Errorf("ort: view [%d, %d) of %s: %w", lo, lo+n, t, err)
	}
	return &Tensor{dtype: t.dtype, shape: slices.Clone(shape), owned: &ortValue{api: o.api, v: v, host: o.host, phase: o.phase}}, nil
}

// Tensor returns an ORT-owned tensor of the given dtype and shape over b, a
// part of the block. The block is memory that ONNX Runtime sessions read in
// place (their initializers), so a tensor over it stands where a CPU
// session wants its inputs and binding it to a run crosses nothing. On a
// device, the session wants its inputs in device memory instead (Alloc).
// The tensor does not keep the block alive: Destroy it before Close.
func (h *HostWeights) Tensor(b []byte, dt onnx.DType, shape []int64) (*Tensor, error) {
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if n == 0 || int64(len(b)) != n*int64(dt.Size()) {
		return nil, fmt.Errorf("ort: host-weight tensor %s%v over %d bytes", dt, shape, len(b))
	}
	if !h.contains(b) {
		return nil, errors.New("ort: host-weight tensor over memory outside the block")
	}
	api, err := ortAPI()
	if err != nil {
		return nil, err
	}
	dims := make([]C.int64_t, len(shape)+1)
	for i, d := range shape {
		dims[i] = C.int64_t(d)
	}
	var v *C.OrtValue
	st := C.igs_view_host(api, unsafe.Pointer(&b[0]), C.size_t(len(b)), &dims[0], C.size_t(len(shape)), C.int(dt), &v)
	runtime.KeepAlive(b)
	if err := statusError(api, st); err != nil {
		return nil, fmt.Errorf("ort: host-weight tensor %s%v: %w", dt, shape, err)
	}
	return &Tensor{dtype: dt, shape: slices.Clone(shape), owned: &ortValue{api: api, v: v, host: true}}, nil
}

// Read returns an ORT-owned tensor's data in Go memory and charges ctx's
// phase (WithPhase) with its bytes, as crossing the boundary: a view of
// host memory (valid while t is; writes to it change t), a copy from a
// device.
func Read(ctx context.Context, t *Tensor) ([]byte, error) {
	if !t.ORTOwned() {
		return nil, fmt.Errorf("ort: reading %s, which is in Go memory", t)
	}
	return t.owned.read(t, Phase(ctx))
}

// HostData is a view of an ORT-owned tensor's data when it lies in host
// memory (ONNX Runtime's CPU allocator, or the host-weight block), and an
// error when it lies on a device. Reading or writing the view is not
// metered: it is for host-only code that shares the tensor's memory (tests,
// a CPU policy over the same weights) rather than copying it.
func (t *Tensor) HostData() ([]byte, error) {
	if !t.ORTOwned() {
		return nil, fmt.Errorf("ort: %s is in Go memory", t)
	}
	return t.mem()
}
