package trainer

import (
	"context"
	"fmt"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// baseTokens is the token budget of one BaseLogprobs run when
// Options.MicroBatchTokens is not set: it bounds the [tokens, vocab]
// logits of a run (2.3 GiB at 4096 tokens and Qwen2.5's vocabulary).
const baseTokens = 4096

// BaseLogprobs scores seqs with the frozen base model of a LoRA trainer,
// the adapters off: out[i][t] = log p(seqs[i][t+1] | seqs[i][..t]) (len−1
// values per sequence). It is the KL reference of LoRA training, computed
// by a forward-only session over the weights the trainer already holds, so
// the reference costs no second copy of the model. Sequences are scored in
// runs of at most Options.MicroBatchTokens tokens (default 4096), each
// left padded to its longest sequence.
func (t *Trainer) BaseLogprobs(seqs [][]int32) ([][]float32, error) {
	if t.opts.Artifact.LoRA == nil {
		return nil, fmt.Errorf("trainer: base log-probs need a LoRA trainer (without adapters the base is what is trained)")
	}
	if t.base == nil {
		s, err := t.newBaseSession()
		if err != nil {
			return nil, err
		}
		t.base = s
	}
	out := make([][]float32, len(seqs))
	budget := t.opts.MicroBatchTokens
	if budget <= 0 {
		budget = baseTokens
	}
	for i, s := range seqs {
		for _, id := range s {
			if id < 0 || int(id) >= t.Config.VocabSize {
				return nil, fmt.Errorf("trainer: base log-probs: sequence %d: token id %d outside the vocabulary (%d)", i, id, t.Config.VocabSize)
			}
		}
	}
	for lo := 0; lo < len(seqs); {
		longest := len(seqs[lo])
		hi := lo + 1
		for hi < len(seqs) && (hi+1-lo)*max(longest, len(seqs[hi])) <= budget {
			longest = max(longest, len(seqs[hi]))
			hi++
		}
		if longest >= 2 {
			if err := t.runBase(seqs[lo:hi], longest, out[lo:hi]); err != nil {
				return nil, err
			}
		}
		lo = hi
	}
	return out, nil
}

// newBaseSession builds the base model's scoring graph (weights as inputs,
// named as in the gradient graph; log-probs at the given rows).
func (t *Trainer) newBaseSession() (*ort.Session, error) {
	g := onnx.NewGraph("igsearch_base_logprobs")
	weights := qwen2.WeightInputs(g, t.Config, onnx.Float)
	batch, seq := onnx.Sym("batch_size"), onnx.Sym("sequence_length")
	ids := g.Input(qwen2.InputIDs, onnx.Int64, batch, seq)
	mask := g.Input(qwen2.AttentionMask, onnx.Int64, batch, seq)
	rows := g.Input(inRows, onnx.Int64, onnx.Sym("rows"))
	fwd, err := qwen2.BuildForwardAt(g, t.Config, weights, ids, mask, rows, qwen2.Options{})
	if err != nil {
		return nil, fmt.Errorf("trainer: base log-probs graph: %w", err)
	}
	g.Output(qwen2.TokenLogprobs, fwd.TokenLogprobs)
	sess := t.opts.Session
	sess.SharedArena = !sess.LowMemory && !sess.Device.CUDA
	s, err := ort.NewSessionFromGraph(g, sess)
	if err != nil {
		return nil, fmt.Errorf("trainer: base log-probs graph: %w", err)
	}
	return s, nil
}

// runBase scores seqs, left padded to cols tokens, into out.
func (t *Trainer) runBase(seqs [][]int32, cols int, out [][]float32) error {
	n := len(seqs)
	ids := make([]int64, n*cols)
	mask := make([]int64, n*cols)
	var rows []int64
	for r, s := range seqs {
		pad := cols - len(s)
		for c, id := range s {
			ids[r*cols+pad+c] = int64(id)
			mask[r*cols+pad+c] = 1
		}
		for c := pad; c < cols-1; c++ {
			rows = append(rows, int64(r*(cols-1)+c))
		}
	}
	// The weights are the resident ones; only the sequences and the
	// log-probs cross the boundary (PhaseReference).
	ctx := ort.WithPhase(context.Background(), PhaseReference)
	var in []*ort.Tensor
	defer func() {
		for _, x := range in {
			x.Destroy()
		}
	}()
	bd, err := t.base.NewBinding()
	if err != nil {
		return fmt.Errorf("trainer: base log-probs: %w", err)
	}
	defer bd.Close()
	bind := func(name string, x *ort.Tensor, err error) error {
		if err == nil {
			err = bd.Input(name, x)
		}
		if x != nil && !x.ORTOwned() {
			in = append(in, x)
		}
		if err != nil {
			return fmt.Errorf("trainer: base log-probs: input %s: %w", name, err)
		}
		return nil
	}
	for _, p := range qwen2.Params(t.Config) {
		if err := bind(p.Name, t.res.params[p.Name], nil); err != nil {
			return err
		}
	}
	x, err := ort.NewTensor([]int64{int64(n), int64(cols)}, ids)
	if err := bind(qwen2.InputIDs, x, err); err != nil {
		return err
	}
	x, err = ort.NewTensor([]int64{int64(n), int64(cols)}, mask)
	if err := bind(qwen2.AttentionMask, x, err); err != nil {
		return err
	}
	x, err = ort.NewTensor([]int64{int64(len(rows))}, rows)
	if err := bind(inRows, x, err); err != nil {
		return err
	}
	if err := bd.OutputInPlace(qwen2.TokenLogprobs); err != nil {
		return fmt.Errorf("trainer: base log-probs: %w", err)
	}
	res, err := bd.Run(ctx)
	if err != nil {
		return fmt.Errorf("trainer: base log-probs: %w", err)
	}
	defer res.Destroy()
	lp, err := ort.Values[float32](res[qwen2.TokenLogprobs])
	if err != nil {
		return fmt.Errorf("trainer: base log-probs: %w", err)
	}
	k := 0
	for r, s := range seqs {
		if len(s) >= 2 {
			out[r] = make([]float32, len(s)-1)
			k += copy(out[r], lp[k:k+len(s)-1])
		}
	}
	return nil
}
