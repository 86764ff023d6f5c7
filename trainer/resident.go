package trainer

import (
	"context"
	"fmt"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// The training state is resident: the weights, the gradient accumulators
// and the AdamW moments are ORT-owned tensors, placed where the sessions
// read them (device memory on CUDA, host memory on the CPU), and they stay
// there across steps. The gradient, sum-of-squares and AdamW runs bind them
// (or views of their chunks, ort.Tensor.View) through ort.Binding; gradients
// are cleared by device-side copies from a zero chunk, and the global norm
// is summed on the device. Per step only the batch crosses the boundary,
// plus a few scalars: the loss and metric sums of each gradient run, the
// norm (one float64), and AdamW's eight float32 hyper-parameters. The state
// reaches the host only when a checkpoint is written (phase "checkpoint"),
// when a policy or a caller reads the weights (HostWeights, PolicyWeights,
// Weights, MergedWeights: phase "weights"), and through State on a device.
//
// The model weights of a CPU trainer are tensors over its host-weight block:
// that is where the CPU session reads its inputs, and the rollout policy
// takes the same block in place (policy.Options.SharedWeights), so nothing
// is copied. Where the gradient session wants its weights on a device, they
// are allocated there and uploaded once; the block then falls behind the
// trained weights and is brought up to date (the trainable ones, metered)
// when a caller asks for it.

// Meter phases (ort.WithPhase) of the trainer's transfers.
const (
	PhaseTrain      = "train"      // Step: the batch, metric sums, norm, AdamW scalars
	PhaseCheckpoint = "checkpoint" // Save and Resume
	PhaseWeights    = "weights"    // weights read for a policy or a caller
	PhaseReference  = "reference"  // BaseLogprobs
	phaseLoad       = "load"       // the state's first upload
)

// resident is the trainer's state in ORT-owned memory.
type resident struct {
	params map[string]*ort.Tensor // every weight input: model weights and adapters
	grads  map[string]*ort.Tensor // trainable: the step's summed gradients
	m, v   map[string]*ort.Tensor // trainable: AdamW's moments
	// zero is float32 zeros, copied over gradients to clear them; zero64 a
	// float64 zero, copied over sumSq, which the sum-of-squares runs add
	// the chunks' Σ grad² into.
	zero, zero64, sumSq *ort.Tensor
	scalars             map[string]*ort.Tensor // AdamW's scalar inputs, rewritten each step
	// onBlock: the model weights are tensors over the host-weight block.
	// Otherwise blockStale says the block is behind them since a step.
	onBlock, blockStale bool
	// device: some of the state lies in device memory; stateStale: State's
	// copies of it are behind it.
	device, stateStale bool
}

// allTensors lists every tensor of r, for Close.
func (r *resident) allTensors() []*ort.Tensor {
	var out []*ort.Tensor
	for _, m := range []map[string]*ort.Tensor{r.params, r.grads, r.m, r.v, r.scalars} {
		for _, x := range m {
			out = append(out, x)
		}
	}
	return append(out, r.zero, r.zero64, r.sumSq)
}

func (r *resident) destroy() {
	if r == nil {
		return
	}
	for _, x := range r.allTensors() {
		x.Destroy()
	}
}

// newResident places the state: the model weights in block (views by
// name) or, where the gradient session wants them on a device (or
// Options.allocWeights), in memory it allocates; the adapters from their
// initial values, zero moments and gradient buffers. It fills t.state's maps
// with host views of the tensors where they lie in host memory.
func (t *Trainer) newResident(views map[string][]float32) error {
	ctx := ort.WithPhase(context.Background(), phaseLoad)
	r := &resident{params: map[string]*ort.Tensor{}, grads: map[string]*ort.Tensor{}, m: map[string]*ort.Tensor{}, v: map[string]*ort.Tensor{}, scalars: map[string]*ort.Tensor{}}
	t.res = r
	params := qwen2.Params(t.Config)
	probe, err := t.grad.Alloc(params[0].Name, onnx.Float, []int64{1})
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	r.onBlock = !probe.OnDevice() && !t.opts.allocWeights
	probe.Destroy()
	for _, p := range params {
		var x *ort.Tensor
		if r.onBlock {
			x, err = t.host.Tensor(onnx.FloatBytes(views[p.Name]), onnx.Float, p.Shape)
		} else {
			x, err = t.upload(ctx, t.grad, p.Name, p.Shape, views[p.Name])
		}
		if err != nil {
			return fmt.Errorf("trainer: weight %s: %w", p.Name, err)
		}
		r.params[p.Name] = x
	}
	for name, init := range t.art.Init {
		var shape []int64
		for _, p := range t.art.Trainable {
			if p.Name == name {
				shape = p.Shape
			}
		}
		x, err := t.upload(ctx, t.grad, name, shape, init)
		if err != nil {
			return fmt.Errorf("trainer: adapter %s: %w", name, err)
		}
		r.params[name] = x
	}
	largest := int64(1)
	for _, p := range t.art.Trainable {
		largest = max(largest, numElements(p.Shape))
	}
	if r.zero, err = t.upload(ctx, t.adamw, optGrad, []int64{min(largest, 1<<18)}, make([]float32, min(largest, 1<<18))); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	if r.zero64, err = t.upload64(ctx, t.sumSq, optAcc, 0); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	if r.sumSq, err = t.upload64(ctx, t.sumSq, optAcc, 0); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	for name := range optimScalars(AdamWConfig{}, 1, 1) {
		if r.scalars[name], err = t.adamw.Alloc(name, onnx.Float, nil); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
	}
	for _, p := range t.art.Trainable {
		for _, b := range []struct {
			s     *ort.Session
			input string
			dst   map[string]*ort.Tensor
		}{{t.grad, accumIn(p.Name), r.grads}, {t.adamw, optM, r.m}, {t.adamw, optV, r.v}} {
			x, err := b.s.Alloc(b.input, onnx.Float, p.Shape)
			if err != nil {
				return fmt.Errorf("trainer: %s: %w", p.Name, err)
			}
			b.dst[p.Name] = x
			if err := t.clear(ctx, x); err != nil {
				return fmt.Errorf("trainer: %s: %w", p.Name, err)
			}
		}
	}
	for _, x := range r.allTensors() {
		r.device = r.device || x.OnDevice()
	}
	r.stateStale = r.device
	return t.viewState()
}

// upload allocates a tensor where s wants its input named input and copies
// data into it.
func (t *Trainer) upload(ctx context.Context, s *ort.Session, input string, shape []int64, data []float32) (*ort.Tensor, error) {
	if int64(len(data)) != numElements(shape) {
		return nil, fmt.Errorf("%d values for shape %v", len(data), shape)
	}
	x, err := s.Alloc(input, onnx.Float, shape)
	if err != nil {
		return nil, err
	}
	if err := copyIn(ctx, x, data); err != nil {
		x.Destroy()
		return nil, err
	}
	return x, nil
}

func (t *Trainer) upload64(ctx context.Context, s *ort.Session, input string, v float64) (*ort.Tensor, error) {
	x, err := s.Alloc(input, onnx.Double, nil)
	if err != nil {
		return nil, err
	}
	src, err := ort.NewTensor(nil, []float64{v})
	if err != nil {
		x.Destroy()
		return nil, err
	}
	defer src.Destroy()
	if err := ort.Copy(ctx, x, src); err != nil {
		x.Destroy()
		return nil, err
	}
	return x, nil
}

// copyIn copies data from Go memory into the ORT-owned float32 tensor x
// (metered under ctx's phase).
func copyIn(ctx context.Context, x *ort.Tensor, data []float32) error {
	src, err := ort.NewTensor(x.Shape(), data)
	if err != nil {
		return err
	}
	defer src.Destroy()
	return ort.Copy(ctx, x, src)
}

// readFloats returns the ORT-owned float32 tensor x in Go memory, metered
// under ctx's phase: a view of host memory, a copy from a device.
func readFloats(ctx context.Context, x *ort.Tensor) ([]float32, error) {
	raw, err := ort.Read(ctx, x)
	if err != nil {
		return nil, err
	}
	return onnx.FloatView(raw), nil
}

// clear zeroes x with copies from the zero chunk, on x's device.
func (t *Trainer) clear(ctx context.Context, x *ort.Tensor) error {
	n, chunk := x.NumElements(), t.res.zero.NumElements()
	for lo := int64(0); lo < n; lo += chunk {
		k := min(chunk, n-lo)
		dst, err := x.View(lo, []int64{k})
		if err != nil {
			return err
		}
		src, err := t.res.zero.View(0, []int64{k})
		if err != nil {
			dst.Destroy()
			return err
		}
		err = ort.Copy(ctx, dst, src)
		dst.Destroy()
		src.Destroy()
		if err != nil {
			return err
		}
	}
	return nil
}

// viewState points t.state's maps at the resident tensors' host memory
// (the model weights at the block when they live there). On a device the
// maps hold copies, refreshed by State.
func (t *Trainer) viewState() error {
	st := t.state
	st.Params, st.M, st.V = map[string][]float32{}, map[string][]float32{}, map[string][]float32{}
	for _, x := range []struct {
		src map[string]*ort.Tensor
		dst map[string][]float32
	}{{t.res.params, st.Params}, {t.res.m, st.M}, {t.res.v, st.V}} {
		for name, r := range x.src {
			if r.OnDevice() {
				continue
			}
			raw, err := r.HostData()
			if err != nil {
				return fmt.Errorf("trainer: %s: %w", name, err)
			}
			x.dst[name] = onnx.FloatView(raw)
		}
	}
	return nil
}

// copyState refreshes t.state's maps with copies of the resident tensors
// that lie in device memory (metered under PhaseWeights).
func (t *Trainer) copyState() error {
	if !t.res.stateStale {
		return nil
	}
	ctx := ort.WithPhase(context.Background(), PhaseWeights)
	st := t.state
	for _, x := range []struct {
		src map[string]*ort.Tensor
		dst map[string][]float32
	}{{t.res.params, st.Params}, {t.res.m, st.M}, {t.res.v, st.V}} {
		for name, r := range x.src {
			if !r.OnDevice() {
				continue
			}
			v, err := readFloats(ctx, r)
			if err != nil {
				return fmt.Errorf("trainer: %s: %w", name, err)
			}
			x.dst[name] = v
		}
	}
	t.res.stateStale = false
	return nil
}

// syncBlock brings the host-weight block up to date with the trained
// weights when they live elsewhere (a device), metered under PhaseWeights.
func (t *Trainer) syncBlock() error {
	r := t.res
	if r.onBlock || !r.blockStale {
		return nil
	}
	ctx := ort.WithPhase(context.Background(), PhaseWeights)
	for _, p := range t.art.Trainable {
		dst, ok := t.blockViews[p.Name]
		if !ok {
			continue // an adapter: not in the block
		}
		src, err := readFloats(ctx, r.params[p.Name])
		if err != nil {
			return fmt.Errorf("trainer: weight %s: %w", p.Name, err)
		}
		copy(dst, src)
	}
	r.blockStale = false
	return nil
}

// resetGrads zeroes the gradient accumulators, on the device.
func (t *Trainer) resetGrads(ctx context.Context) error {
	for _, p := range t.art.Trainable {
		if err := t.clear(ctx, t.res.grads[p.Name]); err != nil {
			return fmt.Errorf("trainer: clearing gradient %s: %w", p.Name, err)
		}
	}
	return nil
}
