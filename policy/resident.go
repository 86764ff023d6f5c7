package policy

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// A resident policy keeps its KV caches where the inference session
// produces them (device memory on CUDA, ORT-owned memory on the CPU) and
// runs through ort.Binding: one step's present keys and values are the next
// step's past without a copy, gathers and forks run on the device
// (kvOps), and the sampling head's [n, V] log-probs are sampled or picked
// there too, so a decode step moves only the new token ids, the new mask
// column, one uniform number per sampled row, and the sampled ids and
// log-probs. Policies whose inference graph returns every position's
// logits (exported ONNX folders) keep the host cache.

// newCache returns an empty cache (zero columns) for n rows.
func (p *Policy) newCache(n int) (*kvCache, error) {
	if !p.resident {
		return newKVCache(p.shape, n), nil
	}
	c := &kvCache{kvShape: p.shape, rows: n, mask: []int64{}, dev: make([]*ort.Tensor, 2*p.shape.layers)}
	shape := []int64{int64(n), int64(p.shape.heads), 0, int64(p.shape.dim)}
	for i := range p.shape.layers {
		for j, name := range []string{qwen2.PastKey(i), qwen2.PastValue(i)} {
			t, err := p.infer.Alloc(name, p.kvDType, shape)
			if err != nil {
				c.release()
				return nil, fmt.Errorf("policy: %w", err)
			}
			c.dev[2*i+j] = t
		}
	}
	var err error
	if c.devMask, err = p.infer.Alloc(qwen2.AttentionMask, onnx.Int64, []int64{int64(n), 0}); err != nil {
		c.release()
		return nil, fmt.Errorf("policy: %w", err)
	}
	return c, nil
}

// uploadMask makes a resident copy of a [n, cols] mask.
func (p *Policy) uploadMask(ctx context.Context, mask []int64, n, cols int) (*ort.Tensor, error) {
	h, err := ort.NewTensor([]int64{int64(n), int64(cols)}, mask)
	if err != nil {
		return nil, err
	}
	defer h.Destroy()
	return p.infer.Upload(ctx, qwen2.AttentionMask, h)
}

// gather builds a cache of src's rows (see gatherKV), on the device for a
// resident policy.
func (p *Policy) gather(ctx context.Context, src []slot) (*kvCache, error) {
	if p.resident {
		return p.gatherResident(ctx, src)
	}
	return gatherKV(p.shape, src), nil
}

// forwardResident is forward for a resident policy: the past keys, values
// and mask are bound where they lie, the present ones stay where the
// session makes them, and so do the sampling head's outputs (res.devLogprobs,
// res.devCDF), which the caller releases with res.release.
func (p *Policy) forwardResident(ctx context.Context, past *kvCache, ids, newMask []int64, w int, want logitsWant) (*forwardResult, error) {
	if want == logitsAll {
		return nil, fmt.Errorf("policy: the inference graph returns last-position log-probs only")
	}
	n, S := past.rows, past.cols+w
	mask, pos := joinMask(past, newMask, w)
	present := &kvCache{kvShape: p.shape, rows: n, cols: S, mask: mask}
	fail := func(err error) (*forwardResult, error) {
		present.release()
		return nil, err
	}
	var err error
	if present.devMask, err = p.ops.appendMask(ctx, past.devMask, newMask, n, w); err != nil {
		return fail(err)
	}
	b, err := p.infer.NewBinding()
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	var hold []*ort.Tensor
	defer func() {
		for _, t := range hold {
			t.Destroy()
		}
	}()
	bindHost := func(name string, data []int64) error {
		t, err := ort.NewTensor([]int64{int64(n), int64(w)}, data)
		if err != nil {
			return err
		}
		hold = append(hold, t)
		return b.Input(name, t)
	}
	if err := bindHost(qwen2.InputIDs, ids); err != nil {
		return fail(err)
	}
	if p.hasPos {
		if err := bindHost(qwen2.PositionIDs, pos); err != nil {
			return fail(err)
		}
	}
	if err := b.Input(qwen2.AttentionMask, present.devMask); err != nil {
		return fail(err)
	}
	for i := range p.shape.layers {
		for j, name := range []string{qwen2.PastKey(i), qwen2.PastValue(i)} {
			if err := b.Input(name, past.dev[2*i+j]); err != nil {
				return fail(err)
			}
		}
		for _, name := range []string{qwen2.PresentKey(i), qwen2.PresentValue(i)} {
			if err := b.OutputInPlace(name); err != nil {
				return fail(err)
			}
		}
	}
	if want == logitsLast {
		for _, name := range []string{outLogprobs, outCDF} {
			if err := b.OutputInPlace(name); err != nil {
				return fail(err)
			}
		}
	}
	out, err := b.Run(ctx)
	if err != nil {
		return fail(fmt.Errorf("policy: %w", err))
	}
	present.dev = make([]*ort.Tensor, 2*p.shape.layers)
	for i := range p.shape.layers {
		present.dev[2*i] = out[qwen2.PresentKey(i)]
		present.dev[2*i+1] = out[qwen2.PresentValue(i)]
	}
	res := &forwardResult{present: present, normalized: true, devLogprobs: out[outLogprobs], devCDF: out[outCDF]}
	return res, nil
}

// sampleResident samples one token per row of res (a resident run's
// sampling head) with each row's generator, on the device (graphSampler):
// one uniform number per row goes in, the tokens and log-probs come out.
func (p *Policy) sampleResident(ctx context.Context, res *forwardResult, rngs []*rand.Rand, sp SamplingParams) ([]int32, []float32, error) {
	var u []float64
	if !sp.greedy() {
		// Exactly one draw per row, as sampler.sample takes.
		u = make([]float64, len(rngs))
		for i, rng := range rngs {
			u[i] = rng.Float64()
		}
	}
	return p.sampler.sample(ctx, res.devLogprobs, res.devCDF, u, sp)
}

// hostLogits returns the run's last-position logits (or log-probs) and CDF,
// [n·V] each, in Go memory: read from the device for a resident run.
func (r *forwardResult) hostLogits(v int) (logits, cdf []float32, err error) {
	if r.devLogprobs == nil {
		return r.logits, r.cdf, nil
	}
	if logits, err = ort.Values[float32](r.devLogprobs); err != nil {
		return nil, nil, err
	}
	if cdf, err = ort.Values[float32](r.devCDF); err != nil {
		return nil, nil, err
	}
	return logits, cdf, nil
}
