package trainer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
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
	// MicroBatchTokens, when positive, sizes micro-batches by tokens
	// instead: consecutive rows are grouped while rows × (their longest
	// unpadded length) stays within the budget (a longer row runs alone).
	// Columns that are padding in every row of a micro-batch are dropped.
	// With MicroBatch also set, both limits hold.
	MicroBatchTokens int
	Session          ort.Options
	// allocWeights holds the model weights in memory that ONNX Runtime
	// allocates even where the gradient session reads host memory: a CUDA
	// trainer's placement (weights uploaded once, the host-weight block
	// brought up to date when read), run on the CPU by tests.
	allocWeights bool
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

// State is the trainer's mutable state as the host sees it: fp32 weights,
// adapters and AdamW moments. The state itself is resident (resident.go):
// where it lies in host memory (on the CPU) the maps are views of it, not
// metered, which tests may also write through; on a device State copies it
// out (metered). The model weights of a CPU trainer are views of the
// host-weight block (HostWeights).
type State struct {
	Step   int64
	Params map[string][]float32 // every weight, trained or frozen
	M, V   map[string][]float32 // trainable weights only
}

// Trainer runs optimiser steps on a Qwen2 model through ONNX Runtime
// sessions: the gradient graph, and the optimiser's two graphs (sum of
// squares for the global norm, AdamW), which run over the trainable tensors
// in chunks. Memory is the weights, one gradient buffer and the two moments
// of the trainable weights, and the activations of one micro-batch: the
// gradient graph adds each micro-batch's gradients into the gradient
// buffer, and AdamW updates weights and moments in place. All of that state
// is resident where the sessions use it (device memory on CUDA) and is
// bound to the runs, so a step moves only its batch and a few scalars
// across the boundary (resident.go). It is not safe for concurrent use.
type Trainer struct {
	Config qwen2.Config
	opts   Options
	art    *GradArtifact
	state  *State
	// res is the state where the sessions use it: weights, the summed
	// gradients (written in place by the gradient graph, each run adding
	// its micro-batch's share) and the moments.
	res   *resident
	grad  *ort.Session
	sumSq *ort.Session
	adamw *ort.Session
	// base scores with the frozen base (BaseLogprobs), built on first use.
	base *ort.Session
	// host holds the model weights (HostWeights); blockViews views each
	// weight's place in it.
	host       *ort.HostWeights
	blockViews map[string][]float32
}

// New builds the training artifacts for cfg and starts from weights,
// which it copies into its host-weight block (HostWeights). ONNX Runtime
// must be initialised (ort.Init).
func New(cfg qwen2.Config, weights qwen2.Weights, opts Options) (*Trainer, error) {
	block, views, err := newHostParams(cfg)
	if err != nil {
		return nil, err
	}
	for _, p := range qwen2.Params(cfg) {
		w := weights[p.Name]
		switch {
		case w == nil:
			block.Close()
			return nil, fmt.Errorf("trainer: missing weight %q", p.Name)
		case w.DType != onnx.Float:
			block.Close()
			return nil, fmt.Errorf("trainer: weight %q is %s; training needs float32", p.Name, w.DType)
		case len(w.Raw) != 4*len(views[p.Name]):
			block.Close()
			return nil, fmt.Errorf("trainer: weight %q has %d bytes, want %d (shape %v)", p.Name, len(w.Raw), 4*len(views[p.Name]), p.Shape)
		}
		copy(onnx.FloatBytes(views[p.Name]), w.Raw)
	}
	return start(cfg, block, views, opts)
}

// Open starts a trainer from the Hugging Face checkpoint in dir (F32, BF16
// or F16 files), read tensor by tensor straight into the trainer's
// host-weight block, so that loading holds no second copy of the model.
func Open(dir string, opts Options) (*Trainer, error) {
	cfg, block, views, err := loadHostParams(dir)
	if err != nil {
		return nil, err
	}
	return start(cfg, block, views, opts)
}

// start builds the trainer over model weights already in block (views by
// HF name): the sessions, the adapters' initial values and the moments.
func start(cfg qwen2.Config, block *ort.HostWeights, views map[string][]float32, opts Options) (*Trainer, error) {
	t, err := newTrainer(cfg, opts)
	if err != nil {
		block.Close()
		return nil, err
	}
	t.host, t.blockViews, t.state = block, views, &State{}
	if err := t.newResident(views); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func newTrainer(cfg qwen2.Config, opts Options) (*Trainer, error) {
	art, err := BuildGradGraph(cfg, opts.Artifact)
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
	t := &Trainer{Config: cfg, opts: opts, art: art}
	if t.grad, err = ort.NewSessionFromGraph(art.Graph, sess); err != nil {
		return nil, fmt.Errorf("trainer: gradient graph: %w", err)
	}
	if t.sumSq, err = ort.NewSessionFromGraph(BuildSumSquaresGraph(), sess); err != nil {
		t.Close()
		return nil, fmt.Errorf("trainer: sum-of-squares graph: %w", err)
	}
	if t.adamw, err = ort.NewSessionFromGraph(BuildAdamWGraph(), sess); err != nil {
		t.Close()
		return nil, fmt.Errorf("trainer: optimizer graph: %w", err)
	}
	return t, nil
}

// Close releases the resident state, the sessions and the weights' block.
func (t *Trainer) Close() error {
	t.res.destroy()
	t.res = nil
	for _, s := range []*ort.Session{t.grad, t.sumSq, t.adamw, t.base} {
		if s != nil {
			s.Close()
		}
	}
	if t.host != nil {
		err := t.host.Close()
		t.host = nil
		return err
	}
	return nil
}

// State exposes the trainer's state (read-only for callers, see State). On
// a device it first copies the state out if a step or a resume changed it
// (metered under PhaseWeights); a failed copy panics.
func (t *Trainer) State() *State {
	if t.res != nil && t.res.device {
		if err := t.copyState(); err != nil {
			panic(err)
		}
	}
	return t.state
}

// Steps is the number of optimiser steps taken (State().Step without
// copying the state out of the device).
func (t *Trainer) Steps() int64 { return t.state.Step }

// Weights returns the current model weights (qwen2.Params) as IR tensors
// aliasing the host-weight block; they are valid until the next Step. Where
// the trained weights live on a device, the block is first brought up to
// date (metered under PhaseWeights; a failed copy panics).
func (t *Trainer) Weights() qwen2.Weights {
	if err := t.syncBlock(); err != nil {
		panic(err)
	}
	return t.blockWeights()
}

// blockWeights are the model weights as IR tensors over the host-weight
// block, as they lie there (behind the trained ones on a device until
// syncBlock).
func (t *Trainer) blockWeights() qwen2.Weights {
	w := qwen2.Weights{}
	for _, p := range qwen2.Params(t.Config) {
		w[p.Name] = &onnx.Tensor{DType: onnx.Float, Dims: p.Shape, Raw: onnx.FloatBytes(t.blockViews[p.Name])}
	}
	return w
}

// SetLR changes the learning rate for the following steps (schedules).
func (t *Trainer) SetLR(lr float64) { t.opts.Optim.LR = lr }

// Step runs one optimiser step on b: gradient-graph runs over micro-batches,
// then clipping and AdamW (StepContext with no context).
func (t *Trainer) Step(b *Batch) (Metrics, error) { return t.StepContext(context.Background(), b) }

// StepContext is Step under ctx, whose meter phase (ort.WithPhase) gets
// PhaseTrain appended: what crosses the boundary is the batch's inputs, the
// metric sums of each gradient run, the gradient norm and AdamW's scalars.
func (t *Trainer) StepContext(ctx context.Context, b *Batch) (Metrics, error) {
	if err := t.checkBatch(b); err != nil {
		return Metrics{}, err
	}
	ctx = ort.WithPhase(ctx, PhaseTrain)
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

	var sums struct{ loss, clipped, kl, ent, mask, lp float64 }
	start := time.Now()
	// The gradient graph adds into the resident gradients: start from zero.
	if err := t.resetGrads(ctx); err != nil {
		return Metrics{}, err
	}
	for _, mb := range t.microBatches(b) {
		if !anyMasked(b.LossMask[mb.lo:mb.hi]) {
			continue // no trained token: no gradient, and an empty graph input
		}
		out, err := t.runGrad(ctx, b, mb, scale)
		if err != nil {
			return Metrics{}, err
		}
		err = func() error {
			defer out.Destroy()
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
	}

	gradDone := time.Now()
	norm, err := t.applyOptimizer(ctx)
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

// microBatch is rows [lo, hi) of a batch, from column off on (the columns
// before off are padding in every one of these rows).
type microBatch struct{ lo, hi, off int }

// microBatches splits b's rows by Options.MicroBatch and
// Options.MicroBatchTokens.
func (t *Trainer) microBatches(b *Batch) []microBatch {
	rows, cols := len(b.InputIDs), len(b.InputIDs[0])
	maxRows := t.opts.MicroBatch
	if maxRows <= 0 || maxRows > rows {
		maxRows = rows
	}
	budget := t.opts.MicroBatchTokens
	// firstReal is the first column of row r that must be kept: its first
	// unpadded token (left padding), or an earlier trained position.
	firstReal := func(r int) int {
		first := cols - 2 // an all-padding row: keep the two columns a sequence needs
		for c, m := range b.AttentionMask[r] {
			if m != 0 {
				first = c
				break
			}
		}
		for c, m := range b.LossMask[r][:first] {
			if m != 0 {
				return c
			}
		}
		return first
	}
	var out []microBatch
	for lo := 0; lo < rows; {
		off := min(firstReal(lo), cols-2)
		hi := lo + 1
		for hi < rows && hi-lo < maxRows {
			o := min(off, firstReal(hi))
			if budget > 0 && (hi+1-lo)*(cols-o) > budget {
				break
			}
			off, hi = o, hi+1
		}
		if budget <= 0 {
			off = 0 // micro-batches by rows keep the batch's columns
		}
		out = append(out, microBatch{lo, hi, off})
		lo = hi
	}
	return out
}

// batchInputs are the gradient graph's inputs from micro-batch mb of b,
// in Go memory (the caller destroys them): input_ids, attention_mask, the
// trained rows, the loss inputs at those rows and loss_scale. They are what
// crosses the boundary for a gradient run.
func (t *Trainer) batchInputs(b *Batch, mb microBatch, scale float32) (map[string]*ort.Tensor, error) {
	lo, hi, off := mb.lo, mb.hi, mb.off
	in := map[string]*ort.Tensor{}
	fail := func(name string, err error) (map[string]*ort.Tensor, error) {
		for _, x := range in {
			x.Destroy()
		}
		return nil, fmt.Errorf("trainer: input %s: %w", name, err)
	}
	rows, cols := int64(hi-lo), int64(len(b.InputIDs[0])-off)
	ids, err := ort.NewTensor([]int64{rows, cols}, flattenFrom(b.InputIDs[lo:hi], off))
	if err != nil {
		return fail(qwen2.InputIDs, err)
	}
	in[qwen2.InputIDs] = ids
	mask, err := ort.NewTensor([]int64{rows, cols}, flattenFrom(b.AttentionMask[lo:hi], off))
	if err != nil {
		return fail(qwen2.AttentionMask, err)
	}
	in[qwen2.AttentionMask] = mask
	// The trained positions: flat next-token indices with a non-zero mask.
	var sel []int64
	for r := lo; r < hi; r++ {
		for c, m := range b.LossMask[r][off:] {
			if m != 0 {
				sel = append(sel, int64(r-lo)*(cols-1)+int64(c))
			}
		}
	}
	x, err := ort.NewTensor([]int64{int64(len(sel))}, sel)
	if err != nil {
		return fail(inRows, err)
	}
	in[inRows] = x
	for name, m := range map[string][][]float32{"loss_mask": b.LossMask, "advantages": b.Advantages, "old_logprobs": b.OldLogprobs, "ref_logprobs": b.RefLogprobs} {
		if !t.hasInput(name) {
			continue
		}
		vals := make([]float32, len(sel))
		for i, k := range sel {
			vals[i] = m[lo+int(k/(cols-1))][off+int(k%(cols-1))]
		}
		x, err := ort.NewTensor([]int64{int64(len(sel))}, vals)
		if err != nil {
			return fail(name, err)
		}
		in[name] = x
	}
	s, err := ort.NewTensor(nil, []float32{scale})
	if err != nil {
		return fail("loss_scale", err)
	}
	in["loss_scale"] = s
	return in, nil
}

// runGrad runs the gradient graph on micro-batch mb over the resident
// weights, adding its gradients into the resident gradients in place. The
// returned outputs (loss and metric sums, ORT-owned) are the caller's to
// destroy.
func (t *Trainer) runGrad(ctx context.Context, b *Batch, mb microBatch, scale float32) (ort.Outputs, error) {
	in, err := t.batchInputs(b, mb, scale)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, x := range in {
			x.Destroy()
		}
	}()
	bd, err := t.grad.NewBinding()
	if err != nil {
		return nil, fmt.Errorf("trainer: gradient graph: %w", err)
	}
	defer bd.Close()
	var views []*ort.Tensor
	defer func() {
		for _, x := range views {
			x.Destroy()
		}
	}()
	bind := func() error {
		for name, x := range in {
			if err := bd.Input(name, x); err != nil {
				return err
			}
		}
		for _, p := range t.art.Inputs() {
			if err := bd.Input(p.Name, t.res.params[p.Name]); err != nil {
				return err
			}
		}
		// Each gradient output is written into the buffer that its
		// accumulator input reads (a second handle on it): the graph's final
		// Add(accum, g) is element-wise, so it adds in place (see
		// BuildGradGraph).
		for _, p := range t.art.Trainable {
			g := t.res.grads[p.Name]
			if err := bd.Input(accumIn(p.Name), g); err != nil {
				return err
			}
			out, err := g.View(0, p.Shape)
			if err != nil {
				return err
			}
			views = append(views, out)
			if err := bd.Output(gradIn(p.Name), out); err != nil {
				return err
			}
		}
		for _, o := range t.grad.Outputs() {
			if !strings.HasPrefix(o.Name, gradIn("")) {
				if err := bd.OutputInPlace(o.Name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := bind(); err != nil {
		return nil, fmt.Errorf("trainer: gradient graph: %w", err)
	}
	out, err := bd.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("trainer: gradient graph: %w", err)
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

// applyOptimizer clips and applies AdamW to the resident state, tensor by
// tensor in chunks of at most optimChunk elements: first the global
// gradient norm (the chunks' sums of squares added up in float64 on the
// device, then read: 8 bytes), then the in-place AdamW update of weights
// and moments, with the step's scalars uploaded once (32 bytes). It returns
// the gradient norm before clipping; a non-finite norm leaves the weights
// unchanged.
func (t *Trainer) applyOptimizer(ctx context.Context) (float64, error) {
	step := t.state.Step + 1
	r := t.res
	sumSq, err := t.gradSumSquares(ctx)
	if err != nil {
		return 0, fmt.Errorf("trainer: gradient norm: %w", err)
	}
	norm := math.Sqrt(sumSq)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("trainer: step %d: gradient norm is %v; weights left unchanged", step, norm)
	}
	for name, v := range optimScalars(t.opts.Optim, step, clipCoef(t.opts.Optim, norm)) {
		x, err := ort.NewTensor(nil, []float32{v})
		if err != nil {
			return 0, err
		}
		err = ort.Copy(ctx, r.scalars[name], x)
		x.Destroy()
		if err != nil {
			return 0, fmt.Errorf("trainer: optimizer scalar %s: %w", name, err)
		}
	}
	err = t.eachChunk(func(p Param, lo, hi int) error {
		bd, err := t.adamw.NewBinding()
		if err != nil {
			return err
		}
		defer bd.Close()
		var views []*ort.Tensor
		defer func() {
			for _, x := range views {
				x.Destroy()
			}
		}()
		view := func(x *ort.Tensor) (*ort.Tensor, error) {
			v, err := x.View(int64(lo), []int64{int64(hi - lo)})
			if err == nil {
				views = append(views, v)
			}
			return v, err
		}
		for name, x := range r.scalars {
			if err := bd.Input(name, x); err != nil {
				return err
			}
		}
		for _, b := range []struct {
			in, out string
			state   *ort.Tensor
		}{
			{optParam, optNewP, r.params[p.Name]},
			{optGrad, "", r.grads[p.Name]},
			{optM, optNewM, r.m[p.Name]},
			{optV, optNewV, r.v[p.Name]},
		} {
			x, err := view(b.state)
			if err != nil {
				return err
			}
			if err := bd.Input(b.in, x); err != nil {
				return err
			}
			if b.out == "" {
				continue
			}
			// In place: the output is a second view of the input's chunk
			// (BuildAdamWGraph).
			y, err := view(b.state)
			if err != nil {
				return err
			}
			if err := bd.Output(b.out, y); err != nil {
				return err
			}
		}
		_, err = bd.Run(ctx)
		return err
	})
	if err != nil {
		// Some tensors may have been updated: the state is no longer one step.
		return norm, fmt.Errorf("trainer: step %d: optimizer: %w (weights may be partly updated)", step, err)
	}
	t.state.Step = step
	r.blockStale, r.stateStale = !r.onBlock, r.device
	return norm, nil
}

// gradSumSquares is Σ grad² over every trainable gradient, summed chunk by
// chunk in float64 on the device (BuildSumSquaresGraph adds each chunk's
// sum into the accumulator in place) and read once.
func (t *Trainer) gradSumSquares(ctx context.Context) (float64, error) {
	r := t.res
	if err := ort.Copy(ctx, r.sumSq, r.zero64); err != nil {
		return 0, err
	}
	acc, err := r.sumSq.View(0, nil)
	if err != nil {
		return 0, err
	}
	defer acc.Destroy()
	err = t.eachChunk(func(p Param, lo, hi int) error {
		g, err := r.grads[p.Name].View(int64(lo), []int64{int64(hi - lo)})
		if err != nil {
			return err
		}
		defer g.Destroy()
		bd, err := t.sumSq.NewBinding()
		if err != nil {
			return err
		}
		defer bd.Close()
		for _, e := range []error{bd.Input(optGrad, g), bd.Input(optAcc, r.sumSq), bd.Output(optSumSq, acc)} {
			if e != nil {
				return e
			}
		}
		_, err = bd.Run(ctx)
		return err
	})
	if err != nil {
		return 0, err
	}
	raw, err := ort.Read(ctx, r.sumSq)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(raw)), nil
}

// eachChunk calls f for every chunk [lo, hi) of at most optimChunk
// elements of every trainable tensor, in order, stopping at the first
// error.
func (t *Trainer) eachChunk(f func(p Param, lo, hi int) error) error {
	for _, p := range t.art.Trainable {
		n := int(numElements(p.Shape))
		for lo := 0; lo < n; lo += optimChunk {
			if err := f(p, lo, min(lo+optimChunk, n)); err != nil {
				return fmt.Errorf("%s[%d:]: %w", p.Name, lo, err)
			}
		}
	}
	return nil
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

// flattenFrom concatenates rows from column off on.
func flattenFrom[T any](rows [][]T, off int) []T {
	n := 0
	for _, r := range rows {
		n += len(r) - off
	}
	out := make([]T, 0, n)
	for _, r := range rows {
		out = append(out, r[off:]...)
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
