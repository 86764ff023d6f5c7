package ort

/*
#include <stdlib.h>
#include "hostweights.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"github.com/igsearch/igsearch/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// HostWeights holds a model's weights once in host memory, for every session
// of the process: the inference and scoring graphs (and the trainer's, which
// bind the same bytes as inputs) read the same pages.
//
// Graph initializers whose data lies inside the block are not serialised
// into the model: NewSessionFromGraph marks them as external data and hands
// ONNX Runtime an OrtValue over the block for each (AddInitializer, which
// uses the buffer in place; AddExternalInitializers copies it, measured: a
// 2.2 GB weight peaked at 5.7 GB RSS with it, 3.3 GB with AddInitializer,
// the rest being the run's 0.8 GB of activations). So no graph is limited by
// protobuf's 2 GiB, and building a session copies no weight.
//
// The block is an anonymous mapping outside the Go heap (ONNX Runtime keeps
// pointers into it). Fill it through Alloc before building graphs over it;
// after that it is read-only. Close unmaps it once the last session that
// uses it is closed.
type HostWeights struct {
	mu       sync.Mutex
	mem      []byte
	used     int
	sessions int
	closed   bool
}

// NewHostWeights maps size bytes (rounded up to whole pages) of zeroed
// memory. The pages are committed as they are written.
func NewHostWeights(size int64) (*HostWeights, error) {
	if size <= 0 {
		size = 1
	}
	if size > int64(^uint(0)>>1) {
		return nil, fmt.Errorf("host weights: %d bytes do not fit the address space", size)
	}
	mem, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("host weights: mapping %d bytes: %w", size, err)
	}
	// Huge pages, where the kernel allows them: filling gigabytes of
	// weights then takes one fault per 2 MiB instead of per 4 KiB, and the
	// kernels' weight reads miss the TLB less. Advice only.
	_ = syscall.Madvise(mem, syscall.MADV_HUGEPAGE)
	return &HostWeights{mem: mem}, nil
}

// hostAlign keeps every tensor 64-byte aligned, as MLAS kernels prefer.
const hostAlign = 64

// Alloc returns n bytes of the block for one tensor's data.
func (h *HostWeights) Alloc(n int) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("host weights: closed")
	}
	start := (h.used + hostAlign - 1) / hostAlign * hostAlign
	if start+n > len(h.mem) {
		return nil, fmt.Errorf("host weights: %d bytes requested with %d of %d left", n, len(h.mem)-start, len(h.mem))
	}
	h.used = start + n
	return h.mem[start : start+n : start+n], nil
}

// contains reports whether b lies wholly inside the block.
func (h *HostWeights) contains(b []byte) bool {
	if h == nil || len(b) == 0 || len(h.mem) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(&h.mem[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(h.mem))
}

// HostWeightSize is the block size that tensors of the given byte sizes need
// with Alloc's alignment.
func HostWeightSize(sizes []int64) int64 {
	var n int64
	for _, s := range sizes {
		n = (n+hostAlign-1)/hostAlign*hostAlign + s
	}
	return n
}

func (h *HostWeights) acquire() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("host weights: closed")
	}
	h.sessions++
	return nil
}

func (h *HostWeights) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions--
	h.unmapIfDone()
}

// Close frees the block once no session uses it (at once if none does).
func (h *HostWeights) Close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return h.unmapIfDone()
}

func (h *HostWeights) unmapIfDone() error {
	if !h.closed || h.sessions > 0 || h.mem == nil {
		return nil
	}
	err := syscall.Munmap(h.mem)
	h.mem = nil
	return err
}

// externalLocation names the external data of initializers held in host
// weights; ONNX Runtime never opens it, the values replace it first.
const externalLocation = "igsearch-host-weights"

// placeholder is the empty file that externalLocation names, made once per
// process in a temporary directory.
var placeholder struct {
	once sync.Once
	dir  string
	err  error
}

func placeholderDir() (string, error) {
	placeholder.once.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("igsearch-host-weights-%d", os.Getuid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			placeholder.err = err
			return
		}
		f, err := os.OpenFile(filepath.Join(dir, externalLocation), os.O_CREATE|os.O_RDONLY, 0o444)
		if err != nil {
			placeholder.err = err
			return
		}
		f.Close()
		placeholder.dir = dir
	})
	return placeholder.dir, placeholder.err
}

// hostValues are the OrtValues over a session's host-weight initializers;
// they live as long as the session.
type hostValues struct {
	api    *C.OrtApi
	values []*C.OrtValue // made here: released with the session
	added  []*C.OrtValue // every value added, the caller's included
	views  []*Tensor     // user-owned handles on the caller's ORT-owned tensors
	names  []*C.char
	w      *HostWeights
}

// addHostInitializers wraps g's initializers that lie in w as OrtValues and
// adds them to so as shared initializers.
func addHostInitializers(so *C.OrtSessionOptions, g *onnx.Graph, w *HostWeights, given map[string]*Tensor) (*hostValues, error) {
	api, err := ortAPI()
	if err != nil {
		return nil, err
	}
	hv := &hostValues{api: api}
	for _, v := range g.Initializers {
		if t := given[v.Name]; t != nil && v.Init != nil {
			if t.dtype != v.Init.DType || !slices.Equal(t.shape, v.Init.Dims) {
				hv.free()
				return nil, fmt.Errorf("initializer %s: given %s, the graph has %s%v", v.Name, t, v.Init.DType, v.Init.Dims)
			}
			if t.ORTOwned() {
				// AddInitializer takes only buffers the caller owns: a
				// view is an OrtValue over the same memory without an
				// allocator.
				view, err := t.View(0, t.shape)
				if err != nil {
					hv.free()
					return nil, fmt.Errorf("initializer %s: %w", v.Name, err)
				}
				hv.views = append(hv.views, view)
				t = view
			}
			h, err := t.ortHandle()
			if err != nil {
				hv.free()
				return nil, fmt.Errorf("initializer %s: %w", v.Name, err)
			}
			hv.added = append(hv.added, h)
			hv.names = append(hv.names, C.CString(v.Name))
			continue
		}
		if v.Init == nil || !w.contains(v.Init.Raw) {
			continue
		}
		t := v.Init
		if err := t.Validate(); err != nil {
			hv.free()
			return nil, fmt.Errorf("initializer %s: %w", v.Name, err)
		}
		dims := make([]C.int64_t, len(t.Dims)+1) // +1: never a nil pointer for scalars
		for i, d := range t.Dims {
			dims[i] = C.int64_t(d)
		}
		var val *C.OrtValue
		st := C.igs_host_tensor(api, unsafe.Pointer(&t.Raw[0]), C.size_t(len(t.Raw)), &dims[0], C.size_t(len(t.Dims)), C.int(t.DType), &val)
		if err := statusError(api, st); err != nil {
			hv.free()
			return nil, fmt.Errorf("initializer %s: %w", v.Name, err)
		}
		hv.values = append(hv.values, val)
		hv.added = append(hv.added, val)
		hv.names = append(hv.names, C.CString(v.Name))
	}
	if len(hv.added) == 0 {
		return hv, nil
	}
	st := C.igs_add_initializers(api, so, &hv.names[0], &hv.added[0], C.size_t(len(hv.added)))
	if err := statusError(api, st); err != nil {
		hv.free()
		return nil, fmt.Errorf("adding %d shared initializers: %w", len(hv.added), err)
	}
	if len(hv.values) > 0 {
		if err := w.acquire(); err != nil {
			hv.free()
			return nil, err
		}
		hv.w = w
	}
	return hv, nil
}

// free releases the values and the session's hold on the block.
func (hv *hostValues) free() {
	if hv == nil {
		return
	}
	for _, v := range hv.values {
		C.igs_release_value(hv.api, v)
	}
	for _, n := range hv.names {
		C.free(unsafe.Pointer(n))
	}
	for _, t := range hv.views {
		t.Destroy()
	}
	hv.values, hv.added, hv.names, hv.views = nil, nil, nil, nil
	if hv.w != nil {
		hv.w.release()
		hv.w = nil
	}
}

// newSessionWithHostWeights builds a session over g whose initializers in w
// are taken from w in place.
func newSessionWithHostWeights(g *onnx.Graph, w *HostWeights, opts Options) (*Session, error) {
	model, err := g.MarshalExternal(externalLocation, func(v *onnx.Value) bool {
		return opts.Initializers[v.Name] != nil || w.contains(v.Init.Raw)
	})
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	if err := ready(); err != nil {
		return nil, err
	}
	// ONNX Runtime checks that the external file exists before it sees that
	// every reference to it is replaced by an initializer; it never reads it.
	dir, err := placeholderDir()
	if err != nil {
		return nil, fmt.Errorf("ort: session for graph %s: %w", g.Name, err)
	}
	opts.ExternalDataDir = dir
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("ort: session for graph %s: %w", g.Name, err)
	}
	defer so.Destroy()
	h, err := sessionOptionsHandle(so)
	if err != nil {
		return nil, fmt.Errorf("ort: session for graph %s: %w", g.Name, err)
	}
	hv, err := addHostInitializers(h, g, w, opts.Initializers)
	runtime.KeepAlive(so)
	if err != nil {
		return nil, fmt.Errorf("ort: session for graph %s: %w", g.Name, err)
	}
	ins, outs := graphIO(g)
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(model, names(ins), names(outs), so)
	if err != nil {
		hv.free()
		return nil, fmt.Errorf("ort: session for graph %s: %w", g.Name, err)
	}
	sess := newSession("graph "+g.Name, s, ins, outs)
	sess.host = hv
	return sess, nil
}
