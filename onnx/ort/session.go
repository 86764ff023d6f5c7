package ort

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/igsearch/igsearch/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Options configure a Session. The zero value runs on the CPU with ONNX
// Runtime's default thread count and full graph optimisation.
type Options struct {
	// Device is where the session runs; CUDA appends the CUDA execution
	// provider (with CPU fallback for ops it lacks).
	Device Device
	// IntraOpThreads is the thread count inside one op; 0 is ONNX Runtime's
	// default (one per physical core).
	IntraOpThreads int
	// InterOpThreads is the thread count across independent ops; 0 is the
	// default.
	InterOpThreads int
	// CUDA holds extra CUDA provider options (e.g. "gpu_mem_limit",
	// "arena_extend_strategy", "cudnn_conv_algo_search"); "device_id" is set
	// from Device.
	CUDA map[string]string
	// ExternalDataDir is where a model given as bytes finds its external
	// data files; sessions from a file use the file's directory.
	ExternalDataDir string
	// DisableOptimizations turns graph optimisations off (for debugging and
	// for exact op-by-op numerics).
	DisableOptimizations bool
	// LowMemory turns off ONNX Runtime's CPU memory arena and memory-pattern
	// planning, which keep freed activation buffers cached: a training step
	// over a large vocabulary then peaks near its live set instead of twice
	// it, at a small cost in allocation time.
	LowMemory bool
	// SharedArena puts the session's CPU buffers in one arena shared by
	// every such session in the process, which grows by exactly what is
	// requested and keeps freed memory for reuse. Large training buffers are
	// then not page-faulted in afresh on every run (as with LowMemory),
	// and the peak stays near the live set of the sessions (the default
	// per-session arena grows by powers of two). It overrides LowMemory.
	SharedArena bool
	// Weights holds weights shared by several sessions; NewSessionFromGraph
	// takes the graph's initializers that lie in it from there, in place.
	Weights *HostWeights
	// Initializers are ORT-owned tensors (a trainer's resident weights,
	// possibly in device memory) that NewSessionFromGraph gives the
	// session for the graph initializers of the same names, in place
	// (AddInitializer uses an OrtValue on the device the session plans for
	// it without a copy). They must outlive the session.
	Initializers map[string]*Tensor
	// DisablePrepacking stops the CPU kernels from keeping a repacked copy
	// of constant MatMul weights (session.disable_prepacking): with host
	// weights the repacked copy would double their memory.
	DisablePrepacking bool
	// NoSpinning stops intra-op threads from busy-waiting between ops, for
	// machines shared with other work.
	NoSpinning bool
	// RecordPlacement makes ONNX Runtime record which execution provider
	// each node got, for Session.Placement; sessions on a device always
	// record it (see placement.go).
	RecordPlacement bool
	// StrictPlacement makes creating a device session fail when an
	// attention or MatMul node (DeviceOps) lands on the CPU execution
	// provider; without it such a session warns on stderr with the count.
	StrictPlacement bool
}

// IO describes one session input or output.
type IO struct {
	Name  string
	DType onnx.DType
	// Shape is as the model declares it, with symbolic dims by name; nil if
	// the rank is unknown.
	Shape onnx.Shape
}

// Session is a loaded model ready to run. Run is safe for concurrent use;
// Close is not.
type Session struct {
	name    string
	s       *ortgo.DynamicAdvancedSession
	inputs  []IO
	outputs []IO
	inIdx   map[string]int
	outIdx  map[string]int
	host    *hostValues // the host-weight initializers, released on Close
	place   placement   // where inputs and outputs live, for Alloc and Binding
}

// NewSession loads the model at path (its external data, if any, is found
// relative to the file). The I/O names and types are read from the file
// first, without its weights.
func NewSession(path string, opts Options) (*Session, error) {
	if err := ready(); err != nil {
		return nil, err
	}
	m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true})
	if err != nil {
		return nil, fmt.Errorf("ort: session: %w", err)
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("ort: session %s: %w", path, err)
	}
	defer so.Destroy()
	ins, outs := graphIO(m.Graph)
	s, err := ortgo.NewDynamicAdvancedSession(path, names(ins), names(outs), so)
	if err != nil {
		return nil, fmt.Errorf("ort: session %s: %w", path, err)
	}
	return checked(newSession(path, s, ins, outs), nil, opts)
}

// NewSessionFromBytes loads a serialised ModelProto (e.g. from
// onnx.Graph.Marshal). ONNX Runtime copies what it needs; model may be reused
// after it returns.
func NewSessionFromBytes(model []byte, opts Options) (*Session, error) {
	if err := ready(); err != nil {
		return nil, err
	}
	m, err := onnx.Decode(model, onnx.LoadOptions{SkipData: true})
	if err != nil {
		return nil, fmt.Errorf("ort: session from bytes: %w", err)
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("ort: session from bytes: %w", err)
	}
	defer so.Destroy()
	ins, outs := graphIO(m.Graph)
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(model, names(ins), names(outs), so)
	if err != nil {
		return nil, fmt.Errorf("ort: session from bytes: %w", err)
	}
	return checked(newSession("<bytes>", s, ins, outs), nil, opts)
}

// NewSessionFromGraph marshals g and loads it. Initializers whose data lies
// in opts.Weights are taken from there in place (see HostWeights), whatever
// their size; the rest are inline and must stay under protobuf's 2 GiB.
func NewSessionFromGraph(g *onnx.Graph, opts Options) (*Session, error) {
	if opts.Weights != nil || len(opts.Initializers) > 0 {
		s, err := newSessionWithHostWeights(g, opts.Weights, opts)
		return checked(s, err, opts)
	}
	b, err := g.Marshal()
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	s, err := NewSessionFromBytes(b, opts)
	if err != nil {
		return nil, err
	}
	s.name = "graph " + g.Name
	return s, nil
}

func graphIO(g *onnx.Graph) (ins, outs []IO) {
	io := func(v *onnx.Value) IO {
		x := IO{Name: v.Name, DType: v.Type, Shape: v.Shape}
		if !v.RankKnown() {
			x.Shape = nil
		} else if x.Shape == nil {
			x.Shape = onnx.Shape{}
		}
		return x
	}
	for _, v := range g.Inputs {
		ins = append(ins, io(v))
	}
	for _, v := range g.Outputs {
		outs = append(outs, io(v))
	}
	return ins, outs
}

func names(ios []IO) []string {
	out := make([]string, len(ios))
	for i, x := range ios {
		out[i] = x.Name
	}
	return out
}

func newSession(name string, s *ortgo.DynamicAdvancedSession, ins, outs []IO) *Session {
	sess := &Session{name: name, s: s, inputs: ins, outputs: outs, inIdx: map[string]int{}, outIdx: map[string]int{}}
	for i, x := range ins {
		sess.inIdx[x.Name] = i
	}
	for i, x := range outs {
		sess.outIdx[x.Name] = i
	}
	return sess
}

func sessionOptions(opts Options) (*ortgo.SessionOptions, error) {
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	fail := func(err error) (*ortgo.SessionOptions, error) {
		so.Destroy()
		return nil, err
	}
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return fail(fmt.Errorf("intra-op threads %d: %w", opts.IntraOpThreads, err))
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return fail(fmt.Errorf("inter-op threads %d: %w", opts.InterOpThreads, err))
		}
	}
	if opts.DisableOptimizations {
		if err := so.SetGraphOptimizationLevel(ortgo.GraphOptimizationLevelDisableAll); err != nil {
			return fail(fmt.Errorf("graph optimisation level: %w", err))
		}
	}
	if opts.SharedArena {
		if err := registerSharedArena(); err != nil {
			return fail(fmt.Errorf("shared CPU arena: %w", err))
		}
		if err := so.AddSessionConfigEntry("session.use_env_allocators", "1"); err != nil {
			return fail(fmt.Errorf("shared CPU arena: %w", err))
		}
	} else if opts.LowMemory {
		if err := so.SetCpuMemArena(false); err != nil {
			return fail(fmt.Errorf("memory arena: %w", err))
		}
		if err := so.SetMemPattern(false); err != nil {
			return fail(fmt.Errorf("memory pattern: %w", err))
		}
	}
	if opts.DisablePrepacking {
		if err := so.AddSessionConfigEntry("session.disable_prepacking", "1"); err != nil {
			return fail(fmt.Errorf("prepacking: %w", err))
		}
	}
	if opts.NoSpinning {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return fail(fmt.Errorf("spinning: %w", err))
		}
	}
	if opts.recordPlacement() {
		if err := so.AddSessionConfigEntry(placementConfigKey, "1"); err != nil {
			return fail(fmt.Errorf("placement: %w", err))
		}
	}
	if opts.ExternalDataDir != "" {
		dir, err := filepath.Abs(opts.ExternalDataDir)
		if err != nil {
			return fail(fmt.Errorf("external data dir: %w", err))
		}
		if err := so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", dir); err != nil {
			return fail(fmt.Errorf("external data dir %s: %w", dir, err))
		}
	}
	if opts.Device.CUDA {
		if err := appendCUDA(so, opts.Device, opts.CUDA); err != nil {
			return fail(err)
		}
	}
	return so, nil
}

// appendCUDA appends the CUDA execution provider; failures wrap ErrNoCUDA.
//
// Builds compiled with CUDA support (such as onnxruntime-node's) take the
// provider through the CUDA provider-options API. The npm CUDA build from
// `make setup-cuda` is not compiled that way: it ships
// libonnxruntime_providers_cuda.so as a plugin execution provider
// (CreateEpFactories), which pluginCUDA registers with the environment and
// selects for the session with SessionOptionsAppendExecutionProvider_V2
// (epselect.go), since onnxruntime_go v1.27 does not wrap the latter.
func appendCUDA(so *ortgo.SessionOptions, dev Device, extra map[string]string) error {
	lib := Library()
	hint := fmt.Sprintf("run `make setup-cuda` and pass --ort-lib %s (loaded: %s)", CUDALibraryPath(), lib)
	co, err := ortgo.NewCUDAProviderOptions()
	if err != nil {
		if strings.Contains(err.Error(), "not enabled in this build") {
			return pluginCUDA(so, dev, extra, err)
		}
		return fmt.Errorf("%s: %w: %v; %s", dev, ErrNoCUDA, err, hint)
	}
	defer co.Destroy()
	o := cudaOptions(dev, extra)
	if err := co.Update(o); err != nil {
		// A CPU build fails here, loading the provider bridge.
		return fmt.Errorf("%s: %w: setting provider options %v: %v; %s", dev, ErrNoCUDA, o, err, hint)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("%s: %w: %v; %s", dev, ErrNoCUDA, err, hint)
	}
	return nil
}

// cudaOptions are the CUDA provider options for dev: extra, with
// "device_id" set from dev.
func cudaOptions(dev Device, extra map[string]string) map[string]string {
	o := map[string]string{"device_id": strconv.Itoa(dev.ID)}
	for k, v := range extra {
		if k != "device_id" {
			o[k] = v
		}
	}
	return o
}

// plugin remembers the outcome of registering the CUDA plugin execution
// provider with the process-wide environment (done once).
var plugin struct {
	once sync.Once
	path string
	err  error
}

// pluginCUDA registers the CUDA plugin beside the loaded library (once per
// process) and appends its device dev.ID to so. optsErr is why the
// provider-options API was not used.
func pluginCUDA(so *ortgo.SessionOptions, dev Device, extra map[string]string, optsErr error) error {
	lib := Library()
	plugin.once.Do(func() {
		plugin.path = filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")
		if _, err := os.Stat(plugin.path); err != nil {
			plugin.err = err
			return
		}
		plugin.err = ortgo.RegisterExecutionProviderLibrary("CUDA", plugin.path)
		if plugin.err != nil {
			if missing := missingLibraries(plugin.path); missing != "" {
				plugin.err = fmt.Errorf("%w; missing libraries: %s", plugin.err, missing)
			}
		}
	})
	if plugin.err != nil {
		return fmt.Errorf("%s: %w: %s was built without the CUDA provider-options API (%v), and its CUDA plugin %s does not load: %v; install CUDA 13 and cuDNN 9 on the loader path, or run `make setup-cuda`",
			dev, ErrNoCUDA, lib, optsErr, plugin.path, plugin.err)
	}
	if err := appendEPDevice(so, cudaEP, dev.ID, cudaOptions(dev, extra)); err != nil {
		return fmt.Errorf("%s: %w: the CUDA plugin %s is registered but cannot be selected: %v (is an NVIDIA GPU visible? check nvidia-smi and CUDA_VISIBLE_DEVICES)",
			dev, ErrNoCUDA, plugin.path, err)
	}
	return nil
}

// Inputs describes the session's inputs in model order.
func (s *Session) Inputs() []IO { return s.inputs }

// Outputs describes the session's outputs in model order.
func (s *Session) Outputs() []IO { return s.outputs }

// Close releases the session. Tensors it returned stay valid.
func (s *Session) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	s.releasePlacement()
	err := s.s.Destroy()
	s.s = nil
	s.host.free()
	s.host = nil
	return err
}

// Run runs the model on the named inputs (every input must be given) and
// returns every output by name. The caller owns the returned tensors and
// destroys them (Outputs.Destroy); inputs stay the caller's.
func (s *Session) Run(inputs map[string]*Tensor) (Outputs, error) {
	out := Outputs{}
	if err := s.RunWith(inputs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// RunWith is Run with pre-bound outputs: tensors already in outputs (by
// output name, with the right dtype and shape) are written in place and stay
// the caller's; every other output is allocated and added to the map, owned by
// the caller. On error, nothing is added.
func (s *Session) RunWith(inputs map[string]*Tensor, outputs Outputs) error {
	return s.RunContext(context.Background(), inputs, outputs)
}

// RunContext is RunWith with ctx's meter phase (WithPhase) charged with
// every tensor bound to the run: its inputs and outputs are all in Go
// memory, so on a device they all cross the boundary.
func (s *Session) RunContext(ctx context.Context, inputs map[string]*Tensor, outputs Outputs) error {
	if s.s == nil {
		return fmt.Errorf("ort: %s: session is closed", s.name)
	}
	in := make([]ortgo.Value, len(s.inputs))
	for name, t := range inputs {
		i, ok := s.inIdx[name]
		if !ok {
			return fmt.Errorf("ort: %s: unknown input %q (inputs: %s)", s.name, name, ioNames(s.inputs))
		}
		if t.ORTOwned() {
			return fmt.Errorf("ort: %s: input %q is ORT-owned: run it through a Binding", s.name, name)
		}
		if t == nil || t.value == nil {
			return fmt.Errorf("ort: %s: input %q is nil or destroyed", s.name, name)
		}
		if want := s.inputs[i].DType; want != onnx.Undefined && t.dtype != want {
			return fmt.Errorf("ort: %s: input %q is %s, the model wants %s", s.name, name, t.dtype, want)
		}
		in[i] = t.value
	}
	var missing []string
	for i, v := range in {
		if v == nil {
			missing = append(missing, s.inputs[i].Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ort: %s: missing inputs %s", s.name, strings.Join(missing, ", "))
	}
	out := make([]ortgo.Value, len(s.outputs))
	var scratch []*Tensor // outputs we pre-allocate because onnxruntime_go cannot
	for i, o := range s.outputs {
		if t, ok := outputs[o.Name]; ok {
			if t.ORTOwned() {
				return fmt.Errorf("ort: %s: output %q is ORT-owned: run it through a Binding", s.name, o.Name)
			}
			if t == nil || t.value == nil {
				return fmt.Errorf("ort: %s: pre-bound output %q is nil or destroyed", s.name, o.Name)
			}
			out[i] = t.value
			continue
		}
		t, err := preallocate(o)
		if err != nil {
			for _, t := range scratch {
				t.Destroy()
			}
			return fmt.Errorf("ort: %s: output %q: %w", s.name, o.Name, err)
		}
		if t != nil {
			scratch = append(scratch, t)
			out[i] = t.value
		}
	}
	if err := s.s.Run(in, out); err != nil {
		for _, t := range scratch {
			t.Destroy()
		}
		// onnxruntime_go leaves the outputs it converted in out; release them.
		for i, o := range s.outputs {
			if _, bound := outputs[o.Name]; !bound && out[i] != nil && !isScratch(out[i], scratch) {
				out[i].Destroy()
			}
		}
		return fmt.Errorf("ort: %s: run: %w", s.name, err)
	}
	var to, from int64
	for _, t := range inputs {
		to += t.dataBytes()
	}
	var errs []error
	defer func() {
		for _, o := range s.outputs {
			if t := outputs[o.Name]; t != nil {
				from += t.dataBytes()
			}
		}
		count(Phase(ctx), 1, to, from)
	}()
	for i, o := range s.outputs {
		if _, bound := outputs[o.Name]; bound {
			continue
		}
		if st := findScratch(out[i], scratch); st != nil {
			outputs[o.Name] = st
			continue
		}
		t, err := wrap(out[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("output %q: %w", o.Name, err))
			continue
		}
		outputs[o.Name] = t
	}
	if len(errs) > 0 {
		return fmt.Errorf("ort: %s: %w", s.name, errors.Join(errs...))
	}
	return nil
}

func isScratch(v ortgo.Value, scratch []*Tensor) bool { return findScratch(v, scratch) != nil }

func findScratch(v ortgo.Value, scratch []*Tensor) *Tensor {
	for _, t := range scratch {
		if t.value == v {
			return t
		}
	}
	return nil
}

// preallocate makes an output tensor for the cases onnxruntime_go cannot
// convert after a run: rank-0 outputs, and float16/bfloat16 outputs of a
// static shape. It returns nil when ONNX Runtime should allocate.
func preallocate(o IO) (*Tensor, error) {
	if o.Shape == nil {
		return nil, nil
	}
	if len(o.Shape) == 0 {
		switch o.DType {
		case onnx.Float:
			return NewTensor(nil, []float32{0})
		case onnx.Double:
			return NewTensor(nil, []float64{0})
		case onnx.Int64:
			return NewTensor(nil, []int64{0})
		case onnx.Int32:
			return NewTensor(nil, []int32{0})
		case onnx.Bool:
			return NewTensor(nil, []bool{false})
		case onnx.Uint8:
			return NewTensor(nil, []uint8{0})
		case onnx.Int8:
			return NewTensor(nil, []int8{0})
		}
		return nil, fmt.Errorf("rank-0 %s outputs are not supported; reshape to [1]", o.DType)
	}
	if o.DType == onnx.Float16 || o.DType == onnx.BFloat16 {
		n := o.Shape.NumElements()
		if n < 0 {
			return nil, fmt.Errorf("%s output of dynamic shape %v: pre-bind it with RunWith, or Cast it to float32 in the graph", o.DType, o.Shape)
		}
		return newRaw(o.DType, o.Shape.Sizes(), make([]byte, n*2))
	}
	return nil, nil
}

func ioNames(ios []IO) string {
	n := make([]string, len(ios))
	for i, x := range ios {
		n[i] = x.Name
	}
	return strings.Join(n, ", ")
}

// Outputs maps output names to tensors.
type Outputs map[string]*Tensor

// Destroy releases every tensor in the map.
func (o Outputs) Destroy() {
	for _, t := range o {
		t.Destroy()
	}
}
