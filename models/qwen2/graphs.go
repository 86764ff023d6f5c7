package qwen2

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/igsearch/igsearch/onnx"
)

// The graphs' input and output names (onnx-community's for inference).
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
	Logits        = "logits"
	TokenLogprobs = "token_logprobs"
	Entropy       = "entropy"
	// LastLogprobs and LastCDF are the outputs of Options.SamplingHead.
	LastLogprobs = "logprobs"
	LastCDF      = "cdf"
)

// PastKey names layer i's past-keys input [batch, kv_heads, past, head_dim].
func PastKey(i int) string { return fmt.Sprintf("past_key_values.%d.key", i) }

// PastValue names layer i's past-values input [batch, kv_heads, past, head_dim].
func PastValue(i int) string { return fmt.Sprintf("past_key_values.%d.value", i) }

// PresentKey names layer i's keys output [batch, kv_heads, past+T, head_dim].
func PresentKey(i int) string { return fmt.Sprintf("present.%d.key", i) }

// PresentValue names layer i's values output [batch, kv_heads, past+T, head_dim].
func PresentValue(i int) string { return fmt.Sprintf("present.%d.value", i) }

// BuildInference builds the generation graph with a KV cache and the
// onnx-community I/O, weights as initializers:
//
//	input_ids int64 [B,T], attention_mask int64 [B,P+T], position_ids int64 [B,T],
//	past_key_values.{i}.key/value [B,kv_heads,P,head_dim]
//	→ logits float32 [B,T,V], present.{i}.key/value [B,kv_heads,P+T,head_dim]
//
// The KV cache has the model dtype. attention_mask is 1 for real tokens and 0
// for (left) padding, over the past and the new tokens; the first call passes
// P = 0 past tensors. With opts.LastLogits, logits are [B,1,V] for the last
// position only; opts.SamplingHead replaces them by LastLogprobs and LastCDF. The initializers alias w's data.
func BuildInference(cfg Config, w Weights, opts Options) (*onnx.Graph, error) {
	g, m, err := newInitializerModel("qwen2_inference", cfg, w, opts)
	if err != nil {
		return nil, err
	}
	nKV, d := int64(cfg.NumKeyValueHeads), int64(cfg.HeadDim())
	ids := g.Input(InputIDs, onnx.Int64, dimBatch, dimSeq)
	mask := g.Input(AttentionMask, onnx.Int64, dimBatch, dimTotal)
	var pos *onnx.Value
	if opts.PositionsFromMask {
		all := g.Max(g.Sub(g.CumSum(mask, 1), g.Scalar(onnx.Int64, 1)), g.Scalar(onnx.Int64, 0))
		t := g.Slice(g.Shape(ids), []int64{0}, []int64{1}, []int64{2})
		pos = g.SliceDynamic(all, g.Neg(t), g.Ints(math.MaxInt64), g.Ints(1), onnx.Shape{dimBatch, dimSeq})
	} else {
		pos = g.Input(PositionIDs, onnx.Int64, dimBatch, dimSeq)
	}
	past := make([]kvCache, cfg.NumHiddenLayers)
	for i := range past {
		past[i].key = g.Input(PastKey(i), m.dt, dimBatch, onnx.D(nKV), dimPast, onnx.D(d))
		past[i].value = g.Input(PastValue(i), m.dt, dimBatch, onnx.D(nKV), dimPast, onnx.D(d))
	}
	h, present := m.decoder(ids, m.newAttnContext(ids, mask, pos), past)
	if opts.LastLogits || opts.SamplingHead {
		h = g.Slice(h, []int64{1}, []int64{-1}, []int64{math.MaxInt64})
		h.Shape[1] = onnx.D(1)
	}
	if logits := m.lmHead(h); opts.SamplingHead {
		lp := g.LogSoftmax(logits, -1)
		g.Output(LastLogprobs, lp)
		g.Output(LastCDF, g.CumSum(g.Exp(lp), 2))
	} else {
		g.Output(Logits, logits)
	}
	for i, kv := range present {
		kv.key.Shape[2], kv.value.Shape[2] = dimTotal, dimTotal
		g.Output(PresentKey(i), kv.key)
		g.Output(PresentValue(i), kv.value)
	}
	return g, nil
}

// BuildScoring builds the scoring graph, weights as initializers:
//
//	input_ids int64 [B,T], attention_mask int64 [B,T]
//	→ token_logprobs float32 [B,T-1], and with opts.Entropy entropy float32 [B,T-1]
//
// token_logprobs[b,t] = log p(input_ids[b,t+1] | input_ids[b,..t]); entropy
// is that distribution's entropy. Positions are cumsum(mask)-1 clamped at 0,
// so left padding is handled; values at padded positions are meaningless.
// The [B,T,V] logits are never an output.
func BuildScoring(cfg Config, w Weights, opts Options) (*onnx.Graph, error) {
	g, m, err := newInitializerModel("qwen2_scoring", cfg, w, opts)
	if err != nil {
		return nil, err
	}
	ids := g.Input(InputIDs, onnx.Int64, dimBatch, dimSeq)
	mask := g.Input(AttentionMask, onnx.Int64, dimBatch, dimSeq)
	lp, ent := m.tokenLogprobs(m.nextTokenLogits(ids, mask), ids)
	g.Output(TokenLogprobs, lp)
	if ent != nil {
		g.Output(Entropy, ent)
	}
	return g, nil
}

// Forward holds the training forward's results, all float32.
type Forward struct {
	// Logits are the next-token logits [B,T-1,V] at positions 0..T-2.
	Logits *onnx.Value
	// TokenLogprobs [B,T-1] is log p(ids[b,t+1] | ids[b,..t]).
	TokenLogprobs *onnx.Value
	// Entropy [B,T-1] is the next-token distribution's entropy, nil unless
	// Options.Entropy.
	Entropy *onnx.Value
	// Layers is the residual stream [B,T,hidden] at the decoder layer
	// boundaries: Layers[0] enters layer 0, Layers[l+1] leaves layer l
	// (before the final norm); for gradient checkpointing per layer
	// (onnx/grad's Options.Recompute).
	Layers []*onnx.Value
}

// BuildForward writes the training forward into g: the Qwen2 forward over
// inputIDs [B,T] and attnMask [B,T] (int64, left padding, positions from
// cumsum(mask)-1), with the weights taken from weights (HF names → values,
// usually graph inputs from WeightInputs; a value may also be computed, e.g.
// W + B·A for LoRA). It uses standard ONNX ops only, so onnx/grad can
// differentiate it, and adds no outputs: the trainer puts the loss on top.
func BuildForward(g *onnx.Graph, cfg Config, weights map[string]*onnx.Value, inputIDs, attnMask *onnx.Value, opts Options) (Forward, error) {
	if err := checkTrainingWeights(cfg, weights, opts); err != nil {
		return Forward{}, err
	}
	m := &model{g: g, cfg: cfg, w: weights, opts: opts, dt: opts.dtype()}
	logits := m.nextTokenLogits(inputIDs, attnMask)
	lp, ent := m.tokenLogprobs(logits, inputIDs)
	return Forward{Logits: logits, TokenLogprobs: lp, Entropy: ent, Layers: m.layers}, nil
}

// BuildLogits is BuildForward up to the next-token logits [B,T-1,V] (fp32),
// for trainers that compute their own (fused) log-softmax.
func BuildLogits(g *onnx.Graph, cfg Config, weights map[string]*onnx.Value, inputIDs, attnMask *onnx.Value, opts Options) (*onnx.Value, error) {
	if err := checkTrainingWeights(cfg, weights, opts); err != nil {
		return nil, err
	}
	m := &model{g: g, cfg: cfg, w: weights, opts: opts, dt: opts.dtype()}
	return m.nextTokenLogits(inputIDs, attnMask), nil
}

// checkTrainingWeights checks the config, the attention variant and every
// weight's dtype and shape for a training forward.
func checkTrainingWeights(cfg Config, weights map[string]*onnx.Value, opts Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if opts.Attention != StandardAttention {
		return fmt.Errorf("qwen2: the training forward needs standard attention, not %s", opts.Attention)
	}
	dt := opts.dtype()
	for _, p := range Params(cfg) {
		v := weights[p.Name]
		if v == nil {
			return fmt.Errorf("qwen2: missing weight %q", p.Name)
		}
		if v.Type != dt || !sameShape(v.Shape.Sizes(), p.Shape) {
			return fmt.Errorf("qwen2: weight %q is %s%v, want %s%v", p.Name, v.Type, v.Shape, dt, p.Shape)
		}
	}
	return nil
}

// BuildForwardAt is BuildForward restricted to selected next-token
// positions: rows int64 [N] holds flat indices b·(T−1)+t into the [B,T−1]
// next-token positions (for training, the loss-masked ones), and the
// lm_head, log-softmax and pick run on those N rows only, so the [B,T−1,V]
// logits of the others (prompt, observations, padding) are never computed.
// TokenLogprobs and Entropy come back as [N]; Logits as [N,V].
func BuildForwardAt(g *onnx.Graph, cfg Config, weights map[string]*onnx.Value, inputIDs, attnMask, rows *onnx.Value, opts Options) (Forward, error) {
	if err := checkTrainingWeights(cfg, weights, opts); err != nil {
		return Forward{}, err
	}
	m := &model{g: g, cfg: cfg, w: weights, opts: opts, dt: opts.dtype()}
	positions := g.Max(g.Sub(g.CumSum(attnMask, 1), g.Scalar(onnx.Int64, 1)), g.Scalar(onnx.Int64, 0))
	h, _ := m.decoder(inputIDs, m.newAttnContext(inputIDs, attnMask, positions), nil)
	h = g.Slice(h, []int64{1}, []int64{0}, []int64{-1})
	h.Shape[1] = dimNext
	flat := g.Reshape(h, -1, int64(cfg.HiddenSize))
	logits := m.lmHead(g.Gather(flat, rows, 0))
	next := g.Slice(inputIDs, []int64{1}, []int64{1}, []int64{math.MaxInt64})
	next.Shape[1] = dimNext
	picked := g.Gather(g.Reshape(next, -1), rows, 0)
	logp := g.LogSoftmax(logits, -1)
	f := Forward{Logits: logits, TokenLogprobs: g.Squeeze(g.GatherElements(logp, g.Unsqueeze(picked, -1), -1), -1), Layers: m.layers}
	if opts.Entropy {
		f.Entropy = g.Neg(g.ReduceSum(g.Mul(g.Exp(logp), logp), false, -1))
	}
	return f, nil
}

// WeightInputs declares every weight as a graph input named with its HF name
// (in Params order) and returns them by name, for BuildForward.
func WeightInputs(g *onnx.Graph, cfg Config, dt onnx.DType) map[string]*onnx.Value {
	out := map[string]*onnx.Value{}
	for _, p := range Params(cfg) {
		out[p.Name] = g.Input(p.Name, dt, onnx.Dims(p.Shape...)...)
	}
	return out
}

// nextTokenLogits runs the decoder without a cache and the lm_head on
// positions 0..T-2 only: [B,T-1,V] fp32.
func (m *model) nextTokenLogits(ids, mask *onnx.Value) *onnx.Value {
	g := m.g
	positions := g.Max(g.Sub(g.CumSum(mask, 1), g.Scalar(onnx.Int64, 1)), g.Scalar(onnx.Int64, 0))
	h, _ := m.decoder(ids, m.newAttnContext(ids, mask, positions), nil)
	h = g.Slice(h, []int64{1}, []int64{0}, []int64{-1})
	h.Shape[1] = dimNext
	return m.lmHead(h)
}

// tokenLogprobs gathers the log-softmax of logits [B,T-1,V] at the next
// tokens ids[:,1:], and optionally the entropy −Σ p·log p.
func (m *model) tokenLogprobs(logits, ids *onnx.Value) (lp, entropy *onnx.Value) {
	g := m.g
	logp := g.LogSoftmax(logits, -1)
	next := g.Slice(ids, []int64{1}, []int64{1}, []int64{math.MaxInt64})
	next.Shape[1] = dimNext
	lp = g.Squeeze(g.GatherElements(logp, g.Unsqueeze(next, -1), -1), -1)
	if m.opts.Entropy {
		entropy = g.Neg(g.ReduceSum(g.Mul(g.Exp(logp), logp), false, -1))
	}
	return lp, entropy
}

// IsAdapter reports whether name is a LoRA adapter weight
// (NAME.lora_A.weight or NAME.lora_B.weight, see Options.LoRAScale).
func IsAdapter(name string) bool {
	return strings.HasSuffix(name, ".lora_A.weight") || strings.HasSuffix(name, ".lora_B.weight")
}

// newInitializerModel starts a graph with w's tensors as initializers.
func newInitializerModel(name string, cfg Config, w Weights, opts Options) (*onnx.Graph, *model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	dt := opts.dtype()
	if dt != onnx.Float && dt != onnx.Float16 {
		return nil, nil, fmt.Errorf("qwen2: unsupported dtype %s: float32 or float16", dt)
	}
	g := onnx.NewGraph(name)
	if opts.Attention == FusedAttention {
		g.Opsets[""] = fusedOpset
	}
	vals := map[string]*onnx.Value{}
	for _, p := range Params(cfg) {
		t := w[p.Name]
		if t == nil {
			return nil, nil, fmt.Errorf("qwen2: missing weight %q", p.Name)
		}
		if t.DType != dt || !sameShape(t.Dims, p.Shape) {
			return nil, nil, fmt.Errorf("qwen2: weight %q is %s%v, want %s%v", p.Name, t.DType, t.Dims, dt, p.Shape)
		}
		vals[p.Name] = g.Initializer(p.Name, t)
	}
	if opts.LoRAScale != 0 {
		// Low-rank adapters ride along beside the base weights they adapt
		// (see Options.LoRAScale), in a fixed order.
		names := make([]string, 0)
		for name := range w {
			if IsAdapter(name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			if w[name].DType != dt {
				return nil, nil, fmt.Errorf("qwen2: adapter %q is %s, want %s", name, w[name].DType, dt)
			}
			vals[name] = g.Initializer(name, w[name])
		}
	}
	return g, &model{g: g, cfg: cfg, w: vals, opts: opts, dt: dt}, nil
}
