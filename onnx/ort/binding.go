package ort

// Device-resident tensors and I/O binding, through a cgo shim over the
// ONNX Runtime C API (onnxruntime_go v1.27 wraps IoBinding only with
// pre-allocated Go outputs, which it copies back into Go memory).
//
// An ORT-owned tensor lives where a session wants it: device memory for an
// input or output placed on CUDA, ONNX Runtime's CPU allocator otherwise. A
// Binding runs a session on ORT-owned and Go-memory tensors and leaves its
// outputs where the session produced them, so that one run's outputs (a KV
// cache, say) feed the next run without crossing the boundary.

/*
#cgo CFLAGS: -O2 -I${SRCDIR}/include
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/igsearch/igsearch/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// ortValue is an ORT-owned tensor: an OrtValue this package allocated, or a
// run produced.
type ortValue struct {
	api   *C.OrtApi
	v     *C.OrtValue
	host  bool   // its memory is host memory (ORT's CPU allocator)
	phase string // the meter phase of the run that made it
}

// ORTOwned reports whether t's memory belongs to ONNX Runtime (device
// memory, or ORT's CPU allocator standing in for it) rather than to Go.
func (t *Tensor) ORTOwned() bool { return t != nil && t.owned != nil }

// OnDevice reports whether t lies in device (non-host) memory.
func (t *Tensor) OnDevice() bool { return t.ORTOwned() && !t.owned.host }

// dataBytes is the size of t's data.
func (t *Tensor) dataBytes() int64 { return t.NumElements() * int64(t.dtype.Size()) }

// ortHandle returns the OrtValue behind t, whoever owns its memory.
func (t *Tensor) ortHandle() (*C.OrtValue, error) {
	if t == nil {
		return nil, errors.New("nil tensor")
	}
	if t.owned != nil {
		if t.owned.v == nil {
			return nil, errors.New("tensor used after Destroy")
		}
		return t.owned.v, nil
	}
	if t.value == nil {
		return nil, errors.New("tensor used after Destroy")
	}
	if err := checkValueLayout(); err != nil {
		return nil, err
	}
	return *(**C.OrtValue)(unsafe.Pointer(t.value.GetInternals())), nil
}

// checkValueLayout checks that onnxruntime_go's ValueInternalData is
// struct{ ortValue *C.OrtValue }, which ortHandle reads with unsafe.
func checkValueLayout() error {
	t := reflect.TypeFor[ortgo.ValueInternalData]()
	if t.NumField() == 1 && t.Field(0).Offset == 0 && t.Field(0).Type.Kind() == reflect.Pointer &&
		strings.Contains(t.Field(0).Type.Elem().Name(), "OrtValue") {
		return nil
	}
	return fmt.Errorf("onnxruntime_go's ValueInternalData is not struct{ortValue *C.OrtValue}: update onnx/ort/binding.go for this onnxruntime_go version")
}

// sessionHandle returns the OrtSession behind s, after checking by
// reflection that onnxruntime_go's DynamicAdvancedSession is struct{s
// *AdvancedSession} and AdvancedSession starts with ortSession *C.OrtSession.
func (s *Session) sessionHandle() (*C.OrtSession, error) {
	if s.s == nil {
		return nil, fmt.Errorf("ort: %s: session is closed", s.name)
	}
	d := reflect.TypeFor[ortgo.DynamicAdvancedSession]()
	a := reflect.TypeFor[ortgo.AdvancedSession]()
	if d.NumField() != 1 || d.Field(0).Type != reflect.PointerTo(a) ||
		a.NumField() < 1 || a.Field(0).Name != "ortSession" || a.Field(0).Offset != 0 {
		return nil, errors.New("ort: onnxruntime_go's session layout changed: update onnx/ort/binding.go for this onnxruntime_go version")
	}
	adv := *(*unsafe.Pointer)(unsafe.Pointer(s.s))
	if adv == nil {
		return nil, fmt.Errorf("ort: %s: session is closed", s.name)
	}
	return *(**C.OrtSession)(adv), nil
}

// placement is where a session wants each of its inputs and outputs, and
// the allocators for those places; read once, on first use.
type placement struct {
	once    sync.Once
	err     error
	inputs  []*C.OrtMemoryInfo
	outputs []*C.OrtMemoryInfo
	mu      sync.Mutex
	allocs  map[*C.OrtMemoryInfo]*C.OrtAllocator
}

func (s *Session) placed() (*placement, *C.OrtApi, error) {
	api, err := ortAPI()
	if err != nil {
		return nil, nil, err
	}
	p := &s.place
	p.once.Do(func() {
		h, err := s.sessionHandle()
		if err != nil {
			p.err = err
			return
		}
		read := func(outputs int, n int) ([]*C.OrtMemoryInfo, error) {
			if n == 0 {
				return nil, nil
			}
			infos := make([]*C.OrtMemoryInfo, n)
			ptr := (**C.OrtMemoryInfo)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
			defer C.free(unsafe.Pointer(ptr))
			st := C.igs_memory_infos(api, h, C.int(outputs), (**C.OrtMemoryInfo)(unsafe.Pointer(ptr)), C.size_t(n))
			if err := statusError(api, st); err != nil {
				return nil, err
			}
			copy(infos, unsafe.Slice(ptr, n))
			return infos, nil
		}
		if p.inputs, p.err = read(0, len(s.inputs)); p.err != nil {
			return
		}
		p.outputs, p.err = read(1, len(s.outputs))
		p.allocs = map[*C.OrtMemoryInfo]*C.OrtAllocator{}
	})
	if p.err != nil {
		return nil, nil, fmt.Errorf("ort: %s: memory placement: %w", s.name, p.err)
	}
	return p, api, nil
}

// allocator returns the session's allocator for mi, made once.
func (s *Session) allocator(p *placement, api *C.OrtApi, mi *C.OrtMemoryInfo) (*C.OrtAllocator, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.allocs[mi]; a != nil {
		return a, nil
	}
	h, err := s.sessionHandle()
	if err != nil {
		return nil, err
	}
	var a *C.OrtAllocator
	if err := statusError(api, C.igs_create_allocator(api, h, mi, &a)); err != nil {
		return nil, err
	}
	p.allocs[mi] = a
	return a, nil
}

// releasePlacement frees the allocators; tensors they made stay valid (the
// memory belongs to the session's device allocator).
func (s *Session) releasePlacement() {
	api, err := ortAPI()
	if err != nil {
		return
	}
	p := &s.place
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.allocs {
		C.igs_release_allocator(api, a)
	}
	p.allocs = nil
}

// Alloc makes an uninitialised ORT-owned tensor where the session wants its
// input named input: on the device when a device's kernel consumes it, in
// ONNX Runtime's CPU memory otherwise.
func (s *Session) Alloc(input string, dt onnx.DType, shape []int64) (*Tensor, error) {
	i, ok := s.inIdx[input]
	if !ok {
		return nil, fmt.Errorf("ort: %s: unknown input %q (inputs: %s)", s.name, input, ioNames(s.inputs))
	}
	p, api, err := s.placed()
	if err != nil {
		return nil, err
	}
	return s.allocAt(p, api, p.inputs[i], dt, shape)
}

func (s *Session) allocAt(p *placement, api *C.OrtApi, mi *C.OrtMemoryInfo, dt onnx.DType, shape []int64) (*Tensor, error) {
	if _, err := numElements(shape); err != nil {
		return nil, err
	}
	a, err := s.allocator(p, api, mi)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: allocator: %w", s.name, err)
	}
	dims := make([]C.int64_t, len(shape)+1)
	for i, d := range shape {
		dims[i] = C.int64_t(d)
	}
	var v *C.OrtValue
	if err := statusError(api, C.igs_alloc_tensor(api, a, &dims[0], C.size_t(len(shape)), C.int(dt), &v)); err != nil {
		return nil, fmt.Errorf("ort: %s: allocating %s%v: %w", s.name, dt, shape, err)
	}
	return adopt(api, v, dt, shape, "")
}

// adopt wraps an OrtValue that the caller owns as an ORT-owned tensor.
func adopt(api *C.OrtApi, v *C.OrtValue, dt onnx.DType, shape []int64, phase string) (*Tensor, error) {
	var host C.int
	if err := statusError(api, C.igs_tensor_is_cpu(api, v, &host)); err != nil {
		C.igs_release_value(api, v)
		return nil, err
	}
	return &Tensor{dtype: dt, shape: slices.Clone(shape), owned: &ortValue{api: api, v: v, host: host != 0, phase: phase}}, nil
}

// adoptOutput wraps a run's output, reading its type and shape.
func adoptOutput(api *C.OrtApi, v *C.OrtValue, phase string) (*Tensor, error) {
	var elem C.int
	var dims [16]C.int64_t
	var nd C.size_t
	if err := statusError(api, C.igs_tensor_shape(api, v, &elem, &dims[0], C.size_t(len(dims)), &nd)); err != nil {
		C.igs_release_value(api, v)
		return nil, err
	}
	if int(nd) > len(dims) {
		C.igs_release_value(api, v)
		return nil, fmt.Errorf("output of rank %d", nd)
	}
	shape := make([]int64, nd)
	for i := range shape {
		shape[i] = int64(dims[i])
	}
	return adopt(api, v, onnx.DType(elem), shape, phase)
}

func (o *ortValue) release() {
	if o != nil && o.v != nil {
		C.igs_release_value(o.api, o.v)
		o.v = nil
	}
}

// read returns t's data in Go memory, charging phase with its bytes as
// leaving ONNX Runtime: a view of host memory, or a copy from the device.
func (o *ortValue) read(t *Tensor, phase string) ([]byte, error) {
	if o.v == nil {
		return nil, errors.New("ort: tensor used after Destroy")
	}
	size := t.dataBytes()
	count(phase, 0, 0, size)
	if size == 0 {
		return nil, nil
	}
	if o.host {
		return t.mem()
	}
	buf := make([]byte, size)
	dst, err := newRaw(t.dtype, t.shape, buf)
	if err != nil {
		return nil, err
	}
	defer dst.Destroy()
	if err := copyValues(o.api, []*Tensor{t}, []*Tensor{dst}); err != nil {
		return nil, fmt.Errorf("ort: reading %s from the device: %w", t, err)
	}
	return buf, nil
}

// mem is a view of a host tensor's data, whoever owns it; it counts
// nothing.
func (t *Tensor) mem() ([]byte, error) {
	if t.owned == nil {
		return t.hostBytes()
	}
	o := t.owned
	if o.v == nil {
		return nil, errors.New("ort: tensor used after Destroy")
	}
	if !o.host {
		return nil, fmt.Errorf("ort: %s is in device memory", t)
	}
	size := t.dataBytes()
	if size == 0 {
		return nil, nil
	}
	var p unsafe.Pointer
	if err := statusError(o.api, C.igs_tensor_data(o.api, o.v, &p)); err != nil {
		return nil, fmt.Errorf("ort: reading %s: %w", t, err)
	}
	return unsafe.Slice((*byte)(p), size), nil
}

// Upload copies a Go-memory tensor into a new ORT-owned one where the
// session wants input; ctx's phase is charged with its bytes.
func (s *Session) Upload(ctx context.Context, input string, t *Tensor) (*Tensor, error) {
	if t.ORTOwned() {
		return nil, fmt.Errorf("ort: %s: uploading %s, which ONNX Runtime already owns", s.name, t)
	}
	d, err := s.Alloc(input, t.dtype, t.shape)
	if err != nil {
		return nil, err
	}
	if err := Copy(ctx, d, t); err != nil {
		d.Destroy()
		return nil, err
	}
	d.owned.phase = Phase(ctx)
	return d, nil
}

// Copy copies src's data into dst (same dtype and shape) through ONNX
// Runtime's data transfers: device to device, host to device or back. Only
// a side in Go memory counts as crossing the boundary.
func Copy(ctx context.Context, dst, src *Tensor) error {
	if dst.dtype != src.dtype || !slices.Equal(dst.shape, src.shape) {
		return fmt.Errorf("ort: copying %s into %s", src, dst)
	}
	api, err := ortAPI()
	if err != nil {
		return err
	}
	var to, from int64
	if !src.ORTOwned() {
		to = src.dataBytes()
	}
	if !dst.ORTOwned() {
		from = dst.dataBytes()
	}
	if dst.dataBytes() == 0 {
		return nil
	}
	if !src.OnDevice() && !dst.OnDevice() {
		// Host to host: CopyTensors has no CPU-to-CPU transfer.
		s, err := src.mem()
		if err != nil {
			return err
		}
		d, err := dst.mem()
		if err != nil {
			return err
		}
		copy(d, s)
		count(Phase(ctx), 0, to, from)
		return nil
	}
	if err := copyValues(api, []*Tensor{src}, []*Tensor{dst}); err != nil {
		return fmt.Errorf("ort: copying %s: %w", src, err)
	}
	count(Phase(ctx), 0, to, from)
	return nil
}

// copyValues copies src[i] into dst[i] with OrtApi::CopyTensors.
func copyValues(api *C.OrtApi, src, dst []*Tensor) error {
	n := len(src)
	ptrs := (**C.OrtValue)(C.malloc(C.size_t(2*n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(ptrs))
	all := unsafe.Slice(ptrs, 2*n)
	for i := range n {
		s, err := src[i].ortHandle()
		if err != nil {
			return err
		}
		d, err := dst[i].ortHandle()
		if err != nil {
			return err
		}
		all[i], all[n+i] = s, d
	}
	st := C.igs_copy_tensors(api, (**C.OrtValue)(unsafe.Pointer(&all[0])), (**C.OrtValue)(unsafe.Pointer(&all[n])), C.size_t(n))
	runtime.KeepAlive(src)
	runtime.KeepAlive(dst)
	return statusError(api, st)
}

// Binding is one run's inputs and outputs bound to a session (ONNX
// Runtime's IoBinding). Inputs may be Go-memory or ORT-owned tensors;
// outputs are either pre-bound tensors, written in place, or left to the
// session, which allocates them where it produces them (on the device for a
// device kernel) and hands them to the caller as ORT-owned tensors. A
// Binding is not safe for concurrent use; Close it when done.
type Binding struct {
	s        *Session
	api      *C.OrtApi
	b        *C.OrtIoBinding
	names    []*C.char
	inputs   []*Tensor
	outputs  []string // bound outputs, in binding order
	prebound map[string]*Tensor
	err      error
}

// NewBinding starts an empty binding for s.
func (s *Session) NewBinding() (*Binding, error) {
	h, err := s.sessionHandle()
	if err != nil {
		return nil, err
	}
	api, err := ortAPI()
	if err != nil {
		return nil, err
	}
	b := &Binding{s: s, api: api, prebound: map[string]*Tensor{}}
	if err := statusError(api, C.igs_create_binding(api, h, &b.b)); err != nil {
		return nil, fmt.Errorf("ort: %s: io binding: %w", s.name, err)
	}
	return b, nil
}

func (b *Binding) cname(name string) *C.char {
	c := C.CString(name)
	b.names = append(b.names, c)
	return c
}

// Input binds t to the input named name. t must outlive the run.
func (b *Binding) Input(name string, t *Tensor) error {
	i, ok := b.s.inIdx[name]
	switch {
	case !ok:
		return fmt.Errorf("ort: %s: unknown input %q (inputs: %s)", b.s.name, name, ioNames(b.s.inputs))
	case t == nil:
		return fmt.Errorf("ort: %s: input %q is nil", b.s.name, name)
	}
	if want := b.s.inputs[i].DType; want != onnx.Undefined && t.dtype != want {
		return fmt.Errorf("ort: %s: input %q is %s, the model wants %s", b.s.name, name, t.dtype, want)
	}
	v, err := t.ortHandle()
	if err != nil {
		return fmt.Errorf("ort: %s: input %q: %w", b.s.name, name, err)
	}
	if err := statusError(b.api, C.igs_bind_input(b.api, b.b, b.cname(name), v)); err != nil {
		return fmt.Errorf("ort: %s: binding input %q: %w", b.s.name, name, err)
	}
	b.inputs = append(b.inputs, t)
	return nil
}

// Output binds a pre-allocated tensor (Go-memory or ORT-owned) to the
// output named name; the run writes it in place.
func (b *Binding) Output(name string, t *Tensor) error {
	if _, ok := b.s.outIdx[name]; !ok {
		return fmt.Errorf("ort: %s: unknown output %q (outputs: %s)", b.s.name, name, ioNames(b.s.outputs))
	}
	v, err := t.ortHandle()
	if err != nil {
		return fmt.Errorf("ort: %s: output %q: %w", b.s.name, name, err)
	}
	if err := statusError(b.api, C.igs_bind_output(b.api, b.b, b.cname(name), v)); err != nil {
		return fmt.Errorf("ort: %s: binding output %q: %w", b.s.name, name, err)
	}
	b.outputs = append(b.outputs, name)
	b.prebound[name] = t
	return nil
}

// OutputInPlace leaves the output named name to the session, which
// allocates it where it produces it; Run returns it.
func (b *Binding) OutputInPlace(name string) error {
	i, ok := b.s.outIdx[name]
	if !ok {
		return fmt.Errorf("ort: %s: unknown output %q (outputs: %s)", b.s.name, name, ioNames(b.s.outputs))
	}
	p, api, err := b.s.placed()
	if err != nil {
		return err
	}
	if err := statusError(api, C.igs_bind_output_to_device(api, b.b, b.cname(name), p.outputs[i])); err != nil {
		return fmt.Errorf("ort: %s: binding output %q: %w", b.s.name, name, err)
	}
	b.outputs = append(b.outputs, name)
	return nil
}

// Run runs the session on the binding and returns the outputs that
// OutputInPlace left to it, as ORT-owned tensors that the caller destroys.
// ctx's phase is charged with the Go-memory tensors bound to the run.
func (b *Binding) Run(ctx context.Context) (Outputs, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := b.s.sessionHandle()
	if err != nil {
		return nil, err
	}
	var to, from int64
	for _, t := range b.inputs {
		if !t.ORTOwned() {
			to += t.dataBytes()
		}
	}
	for _, t := range b.prebound {
		if !t.ORTOwned() {
			from += t.dataBytes()
		}
	}
	var vals **C.OrtValue
	var n C.size_t
	st := C.igs_run_binding(b.api, h, b.b, &vals, &n)
	runtime.KeepAlive(b.inputs)
	runtime.KeepAlive(b.prebound)
	if err := statusError(b.api, st); err != nil {
		C.igs_free_values(b.api, vals)
		return nil, fmt.Errorf("ort: %s: run: %w", b.s.name, err)
	}
	phase := Phase(ctx)
	count(phase, 1, to, from)
	got := unsafe.Slice(vals, int(n))
	defer C.igs_free_values(b.api, vals)
	out := Outputs{}
	var errs []error
	for i, v := range got {
		if i >= len(b.outputs) {
			C.igs_release_value(b.api, v)
			continue
		}
		name := b.outputs[i]
		if _, pre := b.prebound[name]; pre {
			C.igs_release_value(b.api, v)
			continue
		}
		t, err := adoptOutput(b.api, v, phase)
		if err != nil {
			errs = append(errs, fmt.Errorf("output %q: %w", name, err))
			continue
		}
		out[name] = t
	}
	if len(errs) > 0 {
		out.Destroy()
		return nil, fmt.Errorf("ort: %s: %w", b.s.name, errors.Join(errs...))
	}
	return out, nil
}

// Close releases the binding (not the tensors bound to it).
func (b *Binding) Close() {
	if b == nil || b.b == nil {
		return
	}
	C.igs_release_binding(b.api, b.b)
	b.b = nil
	for _, c := range b.names {
		C.free(unsafe.Pointer(c))
	}
	b.names = nil
}
