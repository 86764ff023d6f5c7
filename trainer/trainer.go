package trainer

import (
	"fmt"
	"math"
	"time"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// Options configure a Trainer.
type Options struct {
	Artifact ArtifactOptions
	Optim    AdamWConfig
	// MicroBatch is the number of sequences per gradient-graph run; 0 runs
	// the whole batch at once. Gradients are summed over micro-batches.
	MicroBatch int
	Session    ort.Options
}

// Batch is one optimiser step's data. Rows are sequences, left padded to a
// common length T; the per-token arrays have T−1 columns, aligned with the
// next-token log-probs (column t scores InputIDs[b][t+1]).
type Batch struct {
	InputIDs      [][]int64
	AttentionMask [][]int64
	LossMask      [][]float32
	Advantages    [][]float32 // GRPO
	OldLogprobs   [][]float32 // GRPO
	RefLogprobs   [][]float32 // GRPO with kl_beta > 0
}

// Metrics are one step's results; means are over masked tokens.
type Metrics struct {
	Step         int64   `json:"step"`
	Loss         float64 `json:"loss"`
	GradNorm     float64 `json:"grad_norm"` // before clipping
	ClipFraction float64 `json:"clip_fraction"`
	ApproxKL     float64 `json:"approx_kl"`
	Entropy      float64 `json:"entropy,omitempty"`
	LogprobMean  float64 `json:"logprob_mean"`
	Tokens       int     `json:"tokens"`
	// GradSeconds and OptimSeconds are the wall time of the gradient graph
	// runs (with gradient accumulation) and of the optimiser graph.
	GradSeconds  float64 `json:"grad_s"`
	OptimSeconds float64 `json:"optim_s"`
}

// State is the trainer's mutable state: fp32 weights and AdamW moments, in
// Go memory between steps (handed to ONNX Runtime without copies).
type State struct {
	Step   int64
	Params map[string][]float32 // every weight, trained or frozen
	M, V   map[string][]float32 // trainable weights only
}

// Trainer runs optimiser steps on a Qwen2 model through two ONNX Runtime
// sessions (the gradient graph and the optimiser graph). It is not safe for
// concurrent use.
type Trainer struct {
	Config qwen2.Config
	opts   Options
	art    *GradArtifact
	state  *State
	// spare holds the optimiser's output buffers (weights, m, v per
	// trainable tensor), swapped with the state after each step, so that
	// ONNX Runtime writes the new values in place and nothing is copied.
	spare map[string]*[3][]float32
	// grads holds the summed gradients, written in place by the gradient
	// graph (scratch takes the second and later micro-batches).
	grads, scratch map[string][]float32
	grad           *ort.Session
	optim          *ort.Session
}

// New builds the training artifacts for cfg and starts from weights
// (consumed: the trainer copies them into its state). ONNX Runtime must be
// initialised (ort.Init).
func New(cfg qwen2.Config, weights qwen2.Weights, opts Options) (*Trainer, error) {
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return nil, err
	}
	st := &State{Params: map[string][]float32{}, M: map[string][]float32{}, V: map[string][]float32{}}
	for _, p := range t.art.Inputs() {
		if init, ok := t.art.Init[p.Name]; ok {
			st.Params[p.Name] = init
			continue
		}
		w := weights[p.Name]
		if w == nil {
			t.Close()
			return nil, fmt.Errorf("trainer: missing weight %q", p.Name)
		}
		if w.DType != onnx.Float {
			t.Close()
			return nil, fmt.Errorf("trainer: weight %q is %s; training needs float32", p.Name, w.DType)
		}
		st.Params[p.Name] = w.Floats()
	}
	for _, p := range t.art.Trainable {
		n := numElements(p.Shape)
		st.M[p.Name] = make([]float32, n)
		st.V[p.Name] = make([]float32, n)
	}
	t.state = st
	return t, nil
}

func newTrainer(cfg qwen2.Config, opts Options) (*Trainer, error) {
	art, err := BuildGradGraph(cfg, opts.Artifact)
	if err != nil {
		return nil, err
	}
	optimGraph, err := BuildOptimGraph(art.Trainable)
	if err != nil {
		return nil, err
	}
	// The gradient graph's [B,T,V] buffers dominate memory and time. In
	// ONNX Runtime's default per-session arena (grown by powers of two) they
	// peak near twice the live set; with no arena they are page-faulted in
	// afresh on every step, a third of the step spent in the kernel. The
	// shared arena grows by exact sizes and keeps them for reuse, by the
	// optimizer graph too. Session.LowMemory opts out. On CUDA the buffers
	// live in the device's own arena, and the CPU one is left as it is.
	sess := opts.Session
	sess.SharedArena = !sess.LowMemory && !sess.Device.CUDA
	gs, err := ort.NewSessionFromGraph(art.Graph, sess)
	if err != nil {
		return nil, fmt.Errorf("trainer: gradient graph: %w", err)
	}
	os, err := ort.NewSessionFromGraph(optimGraph, sess)
	if err != nil {
		gs.Close()
		return nil, fmt.Errorf("trainer: optimizer graph: %w", err)
	}
	return &Trainer{Config: cfg, opts: opts, art: art, grad: gs, optim: os}, nil
}

// Close releases the sessions.
func (t *Trainer) Close() error {
	t.grad.Close()
	return t.optim.Close()
}

// State exposes the trainer's state (read-only for callers).
func (t *Trainer) State() *State { return t.state }

// Weights returns the current model weights (qwen2.Params) as IR tensors
// aliasing the state; they are valid until the next Step.
func (t *Trainer) Weights() qwen2.Weights {
	w := qwen2.Weights{}
	for _, p := range qwen2.Params(t.Config) {
		w[p.Name] = &onnx.Tensor{DType: onnx.Float, Dims: p.Shape, Raw: onnx.FloatBytes(t.state.Params[p.Name])}
	}
	return w
}

// SetLR changes the learning rate for the following steps (schedules).
func (t *Trainer) SetLR(lr float64) { t.opts.Optim.LR = lr }

// Step runs one optimiser step on b: gradient-graph runs over micro-batches,
// then clipping and AdamW.
func (t *Trainer) Step(b *Batch) (Metrics, error) {
	if err := t.checkBatch(b); err != nil {
		return Metrics{}, err
	}
	tokens := 0.0
	for _, row := range b.LossMask {
		for _, m := range row {
			tokens += float64(m)
		}
	}
	if tokens == 0 {
		return Metrics{}, fmt.Errorf("trainer: batch has no masked tokens")
	}
	scale := float32(1 / tokens)

	rows := len(b.InputIDs)
	mb := t.opts.MicroBatch
	if mb <= 0 || mb > rows {
		mb = rows
	}
	if t.grads == nil {
		t.grads, t.scratch = map[string][]float32{}, map[string][]float32{}
		for _, p := range t.art.Trainable {
			t.grads[p.Name] = make([]float32, numElements(p.Shape))
		}
	}
	var sums struct{ loss, clipped, kl, ent, mask, lp float64 }
	start := time.Now()
	first := true
	for lo := 0; lo < rows; lo += mb {
		hi := min(lo+mb, rows)
		if !anyMasked(b.LossMask[lo:hi]) {
			continue // no trained token: no gradient, and an empty graph input
		}
		// The first micro-batch writes its gradients straight into t.grads;
		// later ones go to scratch and are added.
		dst := t.grads
		if !first {
			dst = t.scratch
			for _, p := range t.art.Trainable {
				if dst[p.Name] == nil {
					dst[p.Name] = make([]float32, numElements(p.Shape))
				}
			}
		}
		out, err := t.runGrad(b, lo, hi, scale, dst)
		if err != nil {
			return Metrics{}, err
		}
		err = func() error {
			defer out.Destroy()
			if !first {
				for name, acc := range t.grads {
					for i, x := range t.scratch[name] {
						acc[i] += x
					}
				}
			}
			for name, dst := range map[string]*float64{outLoss: &sums.loss, outClippedSum: &sums.clipped, outKLSum: &sums.kl, outEntropySum: &sums.ent, outMaskSum: &sums.mask, outLogprobSum: &sums.lp} {
				if out[name] == nil {
					continue
				}
				v, err := ort.Values[float32](out[name])
				if err != nil {
					return fmt.Errorf("trainer: %s: %w", name, err)
				}
				*dst += float64(v[0])
			}
			return nil
		}()
		if err != nil {
			return Metrics{}, err
		}
		first = false
	}

	gradDone := time.Now()
	norm, err := t.applyOptimizer(t.grads)
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{
		GradSeconds:  gradDone.Sub(start).Seconds(),
		OptimSeconds: time.Since(gradDone).Seconds(),
		Step:         t.state.Step,
		Loss:         sums.loss,
		GradNorm:     norm,
		ClipFraction: sums.clipped / tokens,
		ApproxKL:     sums.kl / tokens,
		LogprobMean:  sums.lp / tokens,
		Tokens:       int(tokens),
	}
	if t.opts.Artifact.Entropy {
		m.Entropy = sums.ent / tokens
	}
	return m, nil
}

func (t *Trainer) checkBatch(b *Batch) error {
	rows := len(b.InputIDs)
	if rows == 0 {
		return fmt.Errorf("trainer: empty batch")
	}
	cols := len(b.InputIDs[0])
	if cols < 2 {
		return fmt.Errorf("trainer: sequences need at least 2 tokens, have %d", cols)
	}
	grpo := t.opts.Artifact.Loss.Kind == LossGRPO
	kl := grpo && t.opts.Artifact.Loss.KLBeta > 0
	for _, c := range []struct {
		name     string
		n        int
		required bool
	}{
		{"attention_mask", len(b.AttentionMask), true},
		{"loss_mask", len(b.LossMask), true},
		{"advantages", len(b.Advantages), grpo},
		{"old_logprobs", len(b.OldLogprobs), grpo},
		{"ref_logprobs", len(b.RefLogprobs), kl},
	} {
		if (c.required || c.n > 0) && c.n != rows {
			return fmt.Errorf("trainer: %s has %d rows, input_ids has %d", c.name, c.n, rows)
		}
	}
	for r := 0; r < rows; r++ {
		if len(b.InputIDs[r]) != cols || len(b.AttentionMask[r]) != cols {
			return fmt.Errorf("trainer: row %d: input_ids/attention_mask must all have %d columns", r, cols)
		}
		for name, m := range map[string][][]float32{"loss_mask": b.LossMask, "advantages": b.Advantages, "old_logprobs": b.OldLogprobs, "ref_logprobs": b.RefLogprobs} {
			if len(m) > 0 && len(m[r]) != cols-1 {
				return fmt.Errorf("trainer: row %d: %s has %d columns, want %d (one per next token)", r, name, len(m[r]), cols-1)
			}
		}
		for _, id := range b.InputIDs[r] {
			if id < 0 || id >= int64(t.Config.VocabSize) {
				return fmt.Errorf("trainer: row %d: token id %d outside the vocabulary (%d)", r, id, t.Config.VocabSize)
			}
		}
	}
	return nil
}

// runGrad runs the gradient graph on rows [lo, hi), writing the gradients
// into grads in place. The returned outputs (loss and metric sums) are the
// caller's to destroy.
func (t *Trainer) runGrad(b *Batch, lo, hi int, scale float32, grads map[string][]float32) (ort.Outputs, error) {
	in := map[string]*ort.Tensor{}
	defer func() {
		for _, x := range in {
			x.Destroy()
		}
	}()
	add := func(name string, tensor *ort.Tensor, err error) error {
		if err != nil {
			return fmt.Errorf("trainer: input %s: %w", name, err)
		}
		in[name] = tensor
		return nil
	}
	for _, p := range t.art.Inputs() {
		x, err := ort.NewTensor(p.Shape, t.state.Params[p.Name])
		if err := add(p.Name, x, err); err != nil {
			return nil, err
		}
	}
	rows, cols := int64(hi-lo), int64(len(b.InputIDs[0]))
	ids, err := ort.NewTensor([]int64{rows, cols}, flatten(b.InputIDs[lo:hi]))
	if err := add(qwen2.InputIDs, ids, err); err != nil {
		return nil, err
	}
	mask, err := ort.NewTensor([]int64{rows, cols}, flatten(b.AttentionMask[lo:hi]))
	if err := add(qwen2.AttentionMask, mask, err); err != nil {
		return nil, err
	}
	// The trained positions: flat next-token indices with a non-zero mask.
	var sel []int64
	for r := lo; r < hi; r++ {
		for c, m := range b.LossMask[r] {
			if m != 0 {
				sel = append(sel, int64(r-lo)*(cols-1)+int64(c))
			}
		}
	}
	x, err := ort.NewTensor([]int64{int64(len(sel))}, sel)
	if err := add(inRows, x, err); err != nil {
		return nil, err
	}
	for name, m := range map[string][][]float32{"loss_mask": b.LossMask, "advantages": b.Advantages, "old_logprobs": b.OldLogprobs, "ref_logprobs": b.RefLogprobs} {
		if !t.hasInput(name) {
			continue
		}
		vals := make([]float32, len(sel))
		for i, k := range sel {
			vals[i] = m[lo+int(k/(cols-1))][k%(cols-1)]
		}
		x, err := ort.NewTensor([]int64{int64(len(sel))}, vals)
		if err := add(name, x, err); err != nil {
			return nil, err
		}
	}
	s, err := ort.NewTensor(nil, []float32{scale})
	if err := add("loss_scale", s, err); err != nil {
		return nil, err
	}
	out := ort.Outputs{}
	bound := make([]*ort.Tensor, 0, len(t.art.Trainable))
	defer func() {
		for _, x := range bound {
			x.Destroy()
		}
	}()
	for _, p := range t.art.Trainable {
		x, err := ort.NewTensor(p.Shape, grads[p.Name])
		if err != nil {
			return nil, fmt.Errorf("trainer: gradient %s: %w", p.Name, err)
		}
		out[gradIn(p.Name)] = x
		bound = append(bound, x)
	}
	if err := t.grad.RunWith(in, out); err != nil {
		return nil, fmt.Errorf("trainer: gradient graph: %w", err)
	}
	for _, p := range t.art.Trainable {
		delete(out, gradIn(p.Name))
	}
	return out, nil
}

func (t *Trainer) hasInput(name string) bool {
	for _, io := range t.grad.Inputs() {
		if io.Name == name {
			return true
		}
	}
	return false
}

// applyOptimizer runs the optimiser graph and swaps the new weights and
// moments into the state. It returns the gradient norm before clipping.
func (t *Trainer) applyOptimizer(grads map[string][]float32) (float64, error) {
	step := t.state.Step + 1
	in := map[string]*ort.Tensor{}
	defer func() {
		for _, x := range in {
			x.Destroy()
		}
	}()
	for name, v := range optimScalars(t.opts.Optim, step) {
		x, err := ort.NewTensor(nil, []float32{v})
		if err != nil {
			return 0, err
		}
		in[name] = x
	}
	for _, p := range t.art.Trainable {
		for name, data := range map[string][]float32{paramIn(p.Name): t.state.Params[p.Name], gradIn(p.Name): grads[p.Name], mIn(p.Name): t.state.M[p.Name], vIn(p.Name): t.state.V[p.Name]} {
			x, err := ort.NewTensor(p.Shape, data)
			if err != nil {
				return 0, fmt.Errorf("trainer: optimizer input %s: %w", name, err)
			}
			in[name] = x
		}
	}
	out := ort.Outputs{}
	defer func() {
		for _, x := range out {
			x.Destroy()
		}
	}()
	if t.spare == nil {
		t.spare = map[string]*[3][]float32{}
	}
	for _, p := range t.art.Trainable {
		bufs := t.spare[p.Name]
		if bufs == nil {
			n := numElements(p.Shape)
			bufs = &[3][]float32{make([]float32, n), make([]float32, n), make([]float32, n)}
			t.spare[p.Name] = bufs
		}
		for i, name := range []string{paramOut(p.Name), mOut(p.Name), vOut(p.Name)} {
			x, err := ort.NewTensor(p.Shape, bufs[i])
			if err != nil {
				return 0, fmt.Errorf("trainer: optimizer output %s: %w", name, err)
			}
			out[name] = x
		}
	}
	if err := t.optim.RunWith(in, out); err != nil {
		return 0, fmt.Errorf("trainer: optimizer graph: %w", err)
	}
	normV, err := ort.Values[float32](out["grad_norm"])
	if err != nil {
		return 0, err
	}
	norm := float64(normV[0])
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("trainer: step %d: gradient norm is %v; weights left unchanged", step, norm)
	}
	for _, p := range t.art.Trainable {
		bufs := t.spare[p.Name]
		st := t.state
		st.Params[p.Name], bufs[0] = bufs[0], st.Params[p.Name]
		st.M[p.Name], bufs[1] = bufs[1], st.M[p.Name]
		st.V[p.Name], bufs[2] = bufs[2], st.V[p.Name]
	}
	t.state.Step = step
	return norm, nil
}

func anyMasked(rows [][]float32) bool {
	for _, r := range rows {
		for _, m := range r {
			if m != 0 {
				return true
			}
		}
	}
	return false
}

func flatten[T any](rows [][]T) []T {
	n := 0
	for _, r := range rows {
		n += len(r)
	}
	out := make([]T, 0, n)
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func numElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
