// Package qwen2 is the Qwen2 (Qwen2.5) architecture as ONNX graph builders.
// This file is the model, top to bottom, as in the diagram:
//
//	input_ids → embed → N × ( x += attention(rmsnorm(x)) ; x += mlp(rmsnorm(x)) ) → rmsnorm → lm_head → logits
//
// where attention is grouped-query attention with rotary position embeddings
// (rotate_half, rope_theta) and mlp is down(silu(gate(x)) · up(x)). The same
// block functions write every graph: the inference graph with a KV cache, the
// scoring graph (token log-probs), and the training forward whose weights are
// graph inputs (graphs.go). Weights are graph values named with the Hugging
// Face tensor names, whether initializers or inputs.
package qwen2

import (
	"fmt"
	"math"

	"github.com/igsearch/igsearch/onnx"
)

// Attention selects how attention and RMSNorm are expressed in a graph.
type Attention int

const (
	// StandardAttention uses standard ONNX ops only: MatMul and Softmax
	// with an additive causal + padding mask, RMSNorm from Pow/ReduceMean.
	// It is the only variant the training forward accepts (onnx/grad
	// differentiates it).
	StandardAttention Attention = iota
	// ContribAttention uses ONNX Runtime's com.microsoft.GroupQueryAttention
	// (KV cache in BNSH, the padding mask passed as attention_bias) and
	// SimplifiedLayerNormalization. It runs only on ONNX Runtime, and ORT
	// rejects a multi-token step on top of a past (a continuation chunk)
	// when batch > 1: use StandardAttention for batched continuations, or
	// run them one row at a time.
	ContribAttention
	// FusedAttention uses the fused ops of ONNX opset 23: one Attention
	// node per layer (scores, mask and softmax in one kernel, the KV cache
	// in BNSH, the mask as attn_mask) and RotaryEmbedding. It needs ONNX
	// Runtime 1.23 or later; on the CPU its attention runs about 1.4× and
	// its rotary embedding 1.6× faster than standard attention's separate
	// nodes, and it takes batched continuations. Measured on the CPU only.
	FusedAttention
)

// String is the variant's flag name: "standard", "contrib" or "fused".
func (a Attention) String() string {
	switch a {
	case ContribAttention:
		return "contrib"
	case FusedAttention:
		return "fused"
	}
	return "standard"
}

// PreferredAttention is the variant to build for inference and scoring on a
// device, for weights of dtype dt and heads of headDim. On CPU, chosen by
// measurement (bench_test.go, 2 CPU cores): the contrib variant costs the
// same at short contexts, where the lm_head dominates, and 1.4× (prefill) to
// 1.8× (decode) less CPU time at 2048-token contexts; but ONNX Runtime's CPU
// GroupQueryAttention needs head_size % 8 == 0, so other head sizes use
// standard attention. On CUDA, GroupQueryAttention has fp16/bf16 kernels
// only, so fp32 graphs use standard attention. Batched multi-token
// continuations need StandardAttention (see ContribAttention).
func PreferredAttention(cuda bool, dt onnx.DType, headDim int) Attention {
	switch {
	case cuda && dt != onnx.Float16 && dt != onnx.BFloat16:
		return StandardAttention
	case !cuda && headDim%8 != 0:
		return StandardAttention
	}
	return ContribAttention
}

// ParseAttention maps "standard", "contrib" or "fused" to an Attention.
func ParseAttention(s string) (Attention, error) {
	switch s {
	case "standard", "":
		return StandardAttention, nil
	case "contrib":
		return ContribAttention, nil
	case "fused":
		return FusedAttention, nil
	}
	return 0, fmt.Errorf("unknown attention variant %q: standard, contrib or fused", s)
}

// fusedOpset is the ONNX opset of FusedAttention's Attention and
// RotaryEmbedding.
const fusedOpset = 23

// Options are the choices a graph builder makes beyond the config.
type Options struct {
	Attention Attention
	// DType is the weights' and activations' element type: onnx.Float (the
	// default when zero) or onnx.Float16 (for CUDA). RMSNorm statistics,
	// softmax, log-softmax and the logits stay in fp32.
	DType onnx.DType
	// Entropy adds the per-token entropy of the next-token distribution to
	// the scoring graph and the training forward.
	Entropy bool
	// LastLogits makes the inference graph output logits for the last
	// position only, [B,1,V], instead of [B,T,V]: what generation needs
	// after a prefill, without materialising T×V logits per row (with left
	// padding the last position is every row's newest token). Not part of
	// the onnx-community I/O.
	LastLogits bool
	// SamplingHead replaces the inference graph's logits output by what
	// sampling needs, at the last position only: LastLogprobs (log-softmax,
	// [B,1,V]) and LastCDF (their cumulative probabilities over the
	// vocabulary, [B,1,V]), computed vectorised in the runtime; sampling at
	// temperature 1 is then a binary search. Not part of the onnx-community
	// I/O; it implies LastLogits.
	SamplingHead bool
	// PositionsFromMask makes the inference graph derive the new tokens'
	// positions from attention_mask (cumsum − 1, clamped at 0), as the
	// scoring graph does, instead of taking position_ids: a decode step
	// then needs no positions from the host.
	PositionsFromMask bool
	// FusedLinear computes x·Wᵀ as ONNX Runtime's FusedMatMul (transB) over
	// W as stored, instead of MatMul over Transpose(W). For inference and
	// scoring graphs whose weights stay in memory shared with the caller
	// (ort.HostWeights): ONNX Runtime folds a Transpose of a constant into a
	// transposed copy, which doubles the weights' memory and cannot leave
	// them in place. Training graphs (weights as inputs, differentiated by
	// onnx/grad) and portable exports leave it off.
	FusedLinear bool
	// LoRAScale is the scale s of the low-rank adapters in the weights
	// (PEFT's lora_alpha/r). A linear layer NAME whose weights include
	// NAME.lora_A.weight [r,in] and NAME.lora_B.weight [out,r] computes
	// x·Wᵀ + s·(x·Aᵀ)·Bᵀ: the factored form, so that W + s·B·A is never
	// materialised and W stays the frozen base.
	LoRAScale float64
}

func (o Options) dtype() onnx.DType {
	if o.DType == onnx.Undefined {
		return onnx.Float
	}
	return o.DType
}

// The symbolic dimensions of graph inputs and outputs (the onnx-community
// names).
var (
	dimBatch = onnx.Sym("batch_size")
	dimSeq   = onnx.Sym("sequence_length")
	dimPast  = onnx.Sym("past_sequence_length")
	dimTotal = onnx.Sym("total_sequence_length")
	dimNext  = onnx.Sym("sequence_length_minus_1")
)

// model is one forward pass being written into a graph.
type model struct {
	g    *onnx.Graph
	cfg  Config
	w    map[string]*onnx.Value // HF name → weight value
	opts Options
	dt   onnx.DType
	// sharedPast makes attention take one past [1,P,kv·D] that every row
	// sees and return the new columns only (fusedAttention).
	sharedPast bool
	// layers records the residual stream at each decoder layer boundary:
	// the embedding output, then each layer's output (Forward.Layers).
	layers []*onnx.Value
}

// kvCache is one layer's keys and values, [batch, kv_heads, seq, head_dim].
type kvCache struct{ key, value *onnx.Value }

// decoder runs the diagram from token ids to the final norm's output
// [B,T,hidden]. past is nil for graphs without a KV cache; present returns
// each layer's keys and values including the new tokens.
func (m *model) decoder(ids *onnx.Value, ctx *attnContext, past []kvCache) (hidden *onnx.Value, present []kvCache) {
	x := m.embed(ids)
	m.layers = append(m.layers[:0], x)
	present = make([]kvCache, m.cfg.NumHiddenLayers)
	for l := range present {
		p := fmt.Sprintf("model.layers.%d.", l)
		var cache kvCache
		if past != nil {
			cache = past[l]
		}
		var a *onnx.Value
		a, present[l] = m.attention(p+"self_attn.", m.rmsNorm(x, p+"input_layernorm.weight"), ctx, cache)
		x = m.g.Add(x, a)
		x = m.g.Add(x, m.mlp(p+"mlp.", m.rmsNorm(x, p+"post_attention_layernorm.weight")))
		m.layers = append(m.layers, x)
	}
	return m.rmsNorm(x, "model.norm.weight"), present
}

// embed looks the tokens up in the embedding table: [B,T] → [B,T,hidden].
func (m *model) embed(ids *onnx.Value) *onnx.Value {
	return m.g.Gather(m.weight("model.embed_tokens.weight"), ids, 0)
}

// rmsNorm is x / sqrt(mean(x²) + eps) · weight over the hidden axis, with
// the statistics in fp32 (HF Qwen2RMSNorm). The standard form is the pattern
// ORT itself fuses into SimplifiedLayerNormalization.
func (m *model) rmsNorm(x *onnx.Value, name string) *onnx.Value {
	w := m.weight(name)
	eps := float32(m.cfg.RMSNormEps)
	if m.opts.Attention == ContribAttention {
		return m.g.SimplifiedLayerNorm(x, w, -1, eps, onnx.Float)
	}
	g := m.g
	xf := m.toFloat(x)
	variance := g.ReduceMean(g.Pow(xf, g.Scalar(onnx.Float, 2)), true, -1)
	normed := g.Div(xf, g.Sqrt(g.Add(variance, g.Scalar(onnx.Float, float64(eps)))))
	return g.Mul(w, m.fromFloat(normed))
}

// attention is grouped-query self-attention with rotary embeddings:
// [B,T,hidden] → [B,T,hidden], plus this layer's KV cache after the new
// tokens.
func (m *model) attention(p string, x *onnx.Value, ctx *attnContext, past kvCache) (*onnx.Value, kvCache) {
	if m.fused() {
		return m.fusedAttention(p, x, ctx, past)
	}
	nH, nKV := int64(m.cfg.NumAttentionHeads), int64(m.cfg.NumKeyValueHeads)
	q := m.splitHeads(m.linear(x, p+"q_proj"), nH) // [B,T,heads,D]
	k := m.splitHeads(m.linear(x, p+"k_proj"), nKV)
	v := m.splitHeads(m.linear(x, p+"v_proj"), nKV)
	q, k = m.rotary(q, ctx), m.rotary(k, ctx)
	var o *onnx.Value
	var present kvCache
	if m.opts.Attention == ContribAttention {
		o, present = m.groupQueryAttention(q, k, v, ctx, past)
	} else {
		o, present = m.scaledDotProduct(q, k, v, ctx, past)
	}
	return m.linear(o, p+"o_proj"), present
}

// mlp is the SiLU-gated feed-forward: down(silu(gate(x)) · up(x)).
func (m *model) mlp(p string, x *onnx.Value) *onnx.Value {
	gate := m.linear(x, p+"gate_proj")
	silu := m.g.Mul(gate, m.g.Sigmoid(gate))
	return m.linear(m.g.Mul(silu, m.linear(x, p+"up_proj")), p+"down_proj")
}

// lmHead projects hidden states to fp32 vocabulary logits with lm_head, or
// with the embedding table when the embeddings are tied.
func (m *model) lmHead(h *onnx.Value) *onnx.Value {
	w := "lm_head.weight"
	if m.cfg.TieWordEmbeddings {
		w = "model.embed_tokens.weight"
	}
	return m.toFloat(m.matMulT(h, m.weight(w)))
}

// --- the pieces of attention ---

// attnContext holds what every layer's attention shares: the rotary tables
// and the mask, computed once per graph from the positions and
// attention_mask.
type attnContext struct {
	cos, sin *onnx.Value // [B,T,1,D] in the model dtype ([B,T,D/2] when fused)
	// bias is the additive causal + padding mask [B,1,T,S] (0 or the most
	// negative finite float32): query t sits at absolute position S-T+t and
	// sees key s when s ≤ S-T+t and attention_mask[b,s] = 1.
	bias *onnx.Value
	// groupBias is bias tiled over the query heads of a KV group
	// [B,1,rep·T,S], for scaledDotProduct's grouped MatMul.
	groupBias *onnx.Value
	// seqlensK ([B] int32, S-1) and totalLen (int32 scalar, S) are
	// GroupQueryAttention's lengths: every row is treated as S long and the
	// padding is masked by bias instead, so left padding works.
	seqlensK, totalLen *onnx.Value
}

// newAttnContext computes the rotary tables from positions [B,T] and the
// mask from attentionMask [B,S] (S = past + T).
func (m *model) newAttnContext(ids, attentionMask, positions *onnx.Value) *attnContext {
	g := m.g
	ctx := &attnContext{}
	ctx.cos, ctx.sin = m.rotaryTables(positions)

	one := g.Const(onnx.Int64Tensor(nil, []int64{1}))
	zero := g.Const(onnx.Int64Tensor(nil, []int64{0}))
	seqLen := g.Gather(g.Shape(ids), one, 0)                                  // T
	totalLen := g.Gather(g.Shape(attentionMask), one, 0)                      // S
	keyPos := g.Range(zero, totalLen, one)                                    // [S]
	queryPos := g.Range(g.Sub(totalLen, seqLen), totalLen, one)               // [T]
	causal := g.LessOrEqual(g.Unsqueeze(keyPos, 0), g.Unsqueeze(queryPos, 1)) // [T,S]
	notPad := g.Cast(g.Unsqueeze(attentionMask, 1, 2), onnx.Bool)             // [B,1,1,S]
	keep := g.And(causal, notPad)                                             // [B,1,T,S]
	m.maskAttention(ctx, ids, keep, totalLen)
	return ctx
}

// maskAttention sets ctx's mask from keep [B,1,T,S] (true where a query
// sees a key): the additive bias, and the lengths GroupQueryAttention or
// the grouped bias standard attention needs; total is S ([1] int64).
func (m *model) maskAttention(ctx *attnContext, ids, keep, total *onnx.Value) {
	g := m.g
	one := g.Const(onnx.Int64Tensor(nil, []int64{1}))
	zero := g.Const(onnx.Int64Tensor(nil, []int64{0}))
	ctx.bias = g.Where(keep, g.Scalar(onnx.Float, 0), g.Scalar(onnx.Float, -math.MaxFloat32))
	// The Attention and GroupQueryAttention nodes take the mask in the
	// model dtype.
	if (m.fused() || m.opts.Attention == ContribAttention) && m.dt == onnx.Float16 {
		ctx.bias = g.Cast(g.Max(ctx.bias, g.Scalar(onnx.Float, -65504)), onnx.Float16)
	}
	rep := int64(m.cfg.NumAttentionHeads / m.cfg.NumKeyValueHeads)
	switch {
	case m.fused(): // Attention takes the mask unrepeated over the heads
	case m.opts.Attention == ContribAttention:
		// Every row is treated as S long; padding is masked by bias.
		batch := g.Gather(g.Shape(ids), zero, 0)
		last := g.Cast(g.Sub(total, one), onnx.Int32)
		ctx.seqlensK = g.Expand(last, g.Unsqueeze(batch, 0), onnx.Shape{dimBatch})
		ctx.totalLen = g.Cast(total, onnx.Int32)
	case rep > 1:
		ctx.groupBias = g.Tile(ctx.bias, 1, 1, rep, 1)
	default:
		ctx.groupBias = ctx.bias
	}
}

// rotaryTables computes cos and sin of position·inv_freq, duplicated over the
// two halves of the head dim (HF's emb = cat(freqs, freqs)): [B,T,1,D].
func (m *model) rotaryTables(positions *onnx.Value) (cos, sin *onnx.Value) {
	g := m.g
	d := m.cfg.HeadDim()
	invFreq := make([]float32, d/2)
	for i := range invFreq {
		invFreq[i] = float32(1 / math.Pow(m.cfg.RopeTheta, float64(2*i)/float64(d)))
	}
	pos := g.Unsqueeze(g.Cast(positions, onnx.Float), -1)                          // [B,T,1]
	freqs := g.Mul(pos, g.Const(onnx.FloatTensor([]int64{int64(d / 2)}, invFreq))) // [B,T,D/2]
	if m.fused() {
		// RotaryEmbedding takes the halves, [B,T,D/2].
		return m.fromFloat(g.Cos(freqs)), m.fromFloat(g.Sin(freqs))
	}
	emb := g.Unsqueeze(g.Concat(-1, freqs, freqs), 2) // [B,T,1,D]
	return m.fromFloat(g.Cos(emb)), m.fromFloat(g.Sin(emb))
}

// rotary applies the rotary embedding to x [B,T,heads,D]:
// x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x₂, x₁).
func (m *model) rotary(x *onnx.Value, ctx *attnContext) *onnx.Value {
	g := m.g
	half := int64(m.cfg.HeadDim() / 2)
	x1 := g.Slice(x, []int64{-1}, []int64{0}, []int64{half})
	x2 := g.Slice(x, []int64{-1}, []int64{half}, []int64{2 * half})
	rotated := g.Concat(-1, g.Neg(x2), x1)
	return g.Add(g.Mul(x, ctx.cos), g.Mul(rotated, ctx.sin))
}

// scaledDotProduct is attention in standard ops. Query heads are grouped by
// the KV head they share (head h uses KV head h / rep, as HF repeat_kv), so
// that the KV cache is never repeated: q [B,kv,rep·T,D] · kᵀ [B,kv,D,S].
func (m *model) scaledDotProduct(q, k, v *onnx.Value, ctx *attnContext, past kvCache) (*onnx.Value, kvCache) {
	g := m.g
	nH, nKV, d := int64(m.cfg.NumAttentionHeads), int64(m.cfg.NumKeyValueHeads), int64(m.cfg.HeadDim())
	b, t := q.Shape[0], q.Shape[1]
	q = g.Transpose(q, 0, 2, 1, 3) // [B,heads,T,D]
	k = g.Transpose(k, 0, 2, 1, 3) // [B,kv,T,D]
	v = g.Transpose(v, 0, 2, 1, 3)
	if past.key != nil {
		k = g.Concat(2, past.key, k) // [B,kv,S,D]
		v = g.Concat(2, past.value, v)
	}
	q = g.Mul(q, g.Scalar(m.dt, 1/math.Sqrt(float64(d))))
	grouped := m.reshape(q, onnx.Shape{b, onnx.D(nKV), onnx.Unknown, onnx.D(d)}, 0, nKV, -1, d)
	scores := m.toFloat(g.MatMul(grouped, g.Transpose(k, 0, 1, 3, 2))) // [B,kv,rep·T,S]
	probs := m.fromFloat(g.Softmax(g.Add(scores, ctx.groupBias), -1))
	o := g.MatMul(probs, v) // [B,kv,rep·T,D]
	o = m.reshape(o, onnx.Shape{b, onnx.D(nH), t, onnx.D(d)}, 0, nH, -1, d)
	o = g.Transpose(o, 0, 2, 1, 3) // [B,T,heads,D]
	return m.reshape(o, onnx.Shape{b, t, onnx.D(nH * d)}, 0, 0, nH*d), kvCache{k, v}
}

// fused reports whether attention is FusedAttention's ops: for that
// variant, and for a past that every row shares.
func (m *model) fused() bool { return m.opts.Attention == FusedAttention || m.sharedPast }

// fusedAttention is FusedAttention's self-attention: the projections stay
// [B,T,heads·D], RotaryEmbedding rotates q and k in that layout, and one
// Attention node (opset 23) takes the keys and values after the past's.
// The past is the layer's cache [B,kv,P,D], or with sharedPast one
// [1,P,kv·D] that every row sees, expanded to the rows; present is then
// the new columns only, [B,T,kv·D].
func (m *model) fusedAttention(p string, x *onnx.Value, ctx *attnContext, past kvCache) (*onnx.Value, kvCache) {
	g := m.g
	nH, nKV, d := int64(m.cfg.NumAttentionHeads), int64(m.cfg.NumKeyValueHeads), int64(m.cfg.HeadDim())
	b, t := x.Shape[0], x.Shape[1]
	rotate := func(x *onnx.Value, heads int64) *onnx.Value {
		return g.Node("RotaryEmbedding", "", []*onnx.Value{x, ctx.cos, ctx.sin}, onnx.Attrs{"num_heads": heads},
			onnx.OutSpec{Type: m.dt, Shape: x.Shape})[0]
	}
	q := rotate(m.linear(x, p+"q_proj"), nH)
	k := rotate(m.linear(x, p+"k_proj"), nKV)
	v := m.linear(x, p+"v_proj")
	attrs := onnx.Attrs{"q_num_heads": nH, "kv_num_heads": nKV}
	out := onnx.OutSpec{Type: m.dt, Shape: onnx.Shape{b, t, onnx.D(nH * d)}}
	var o *onnx.Value
	var present kvCache
	switch {
	case m.sharedPast:
		rows := g.Concat(0, g.Gather(g.Shape(q), g.Ints(0), 0), g.Ints(1, 1))
		every := func(x *onnx.Value) *onnx.Value { // [1,P,kv·D] → [B,P,kv·D]
			return g.Expand(x, rows, onnx.Shape{b, onnx.Unknown, onnx.D(nKV * d)})
		}
		keys, values := g.Concat(1, every(past.key), k), g.Concat(1, every(past.value), v)
		o = g.Node("Attention", "", []*onnx.Value{q, keys, values, ctx.bias}, attrs, out)[0]
		present = kvCache{k, v}
	case past.key != nil:
		cache := onnx.OutSpec{Type: m.dt, Shape: onnx.Shape{b, onnx.D(nKV), dimTotal, onnx.D(d)}}
		outs := g.Node("Attention", "", []*onnx.Value{q, k, v, ctx.bias, past.key, past.value}, attrs, out, cache, cache)
		o, present = outs[0], kvCache{outs[1], outs[2]}
	default:
		o = g.Node("Attention", "", []*onnx.Value{q, k, v, ctx.bias}, attrs, out)[0]
	}
	return m.linear(o, p+"o_proj"), present
}

// groupQueryAttention is attention as one com.microsoft.GroupQueryAttention
// node; q, k, v arrive rotated, [B,T,heads,D].
func (m *model) groupQueryAttention(q, k, v *onnx.Value, ctx *attnContext, past kvCache) (*onnx.Value, kvCache) {
	nH, nKV, d := int64(m.cfg.NumAttentionHeads), int64(m.cfg.NumKeyValueHeads), int64(m.cfg.HeadDim())
	b, t := q.Shape[0], q.Shape[1]
	flat := func(x *onnx.Value, heads int64) *onnx.Value {
		return m.reshape(x, onnx.Shape{b, t, onnx.D(heads * d)}, 0, 0, heads*d)
	}
	cacheShape := onnx.Shape{b, onnx.D(nKV), dimTotal, onnx.D(d)}
	inputs := []*onnx.Value{flat(q, nH), flat(k, nKV), flat(v, nKV), past.key, past.value,
		ctx.seqlensK, ctx.totalLen, nil, nil, nil, ctx.bias}
	attrs := onnx.Attrs{"num_heads": nH, "kv_num_heads": nKV, "do_rotary": int64(0)}
	outs := m.g.Node("GroupQueryAttention", onnx.MicrosoftDomain, inputs, attrs,
		onnx.OutSpec{Type: m.dt, Shape: onnx.Shape{b, t, onnx.D(nH * d)}},
		onnx.OutSpec{Type: m.dt, Shape: cacheShape},
		onnx.OutSpec{Type: m.dt, Shape: cacheShape})
	return outs[0], kvCache{outs[1], outs[2]}
}

// --- small helpers ---

// weight returns the named weight value; a missing one is a builder bug
// (checkpoints are checked when loaded).
func (m *model) weight(name string) *onnx.Value {
	w := m.w[name]
	if w == nil {
		panic(fmt.Sprintf("qwen2: no weight %q", name))
	}
	return w
}

// matMulT is x·Wᵀ for a weight W in HF [out, in] layout (see
// Options.FusedLinear).
func (m *model) matMulT(x, w *onnx.Value) *onnx.Value {
	if m.opts.FusedLinear {
		return m.g.MatMulTransB(x, w)
	}
	return m.g.MatMul(x, m.g.Transpose(w, 1, 0))
}

// linear is x·Wᵀ (+ b), with W in HF [out, in] layout; the bias is added when
// the weights have one (q, k and v do).
func (m *model) linear(x *onnx.Value, name string) *onnx.Value {
	y := m.matMulT(x, m.weight(name+".weight"))
	if b := m.w[name+".bias"]; b != nil {
		y = m.g.Add(y, b)
	}
	if a, b := m.w[name+".lora_A.weight"], m.w[name+".lora_B.weight"]; a != nil && b != nil {
		low := m.matMulT(m.matMulT(x, a), b)
		y = m.g.Add(y, m.g.Mul(low, m.g.Scalar(m.dt, m.opts.LoRAScale)))
	}
	return y
}

// splitHeads reshapes [B,T,heads·D] to [B,T,heads,D].
func (m *model) splitHeads(x *onnx.Value, heads int64) *onnx.Value {
	d := int64(m.cfg.HeadDim())
	return m.reshape(x, onnx.Shape{x.Shape[0], x.Shape[1], onnx.D(heads), onnx.D(d)}, 0, 0, heads, d)
}

// reshape reshapes x to target (ONNX semantics), recording out as the
// static shape so that symbolic dims survive.
func (m *model) reshape(x *onnx.Value, out onnx.Shape, target ...int64) *onnx.Value {
	return m.g.ReshapeLike(x, m.g.Ints(target...), out)
}

// toFloat casts a model-dtype value to fp32 (a no-op for fp32 models).
func (m *model) toFloat(x *onnx.Value) *onnx.Value {
	if x.Type == onnx.Float {
		return x
	}
	return m.g.Cast(x, onnx.Float)
}

// fromFloat casts an fp32 value to the model dtype.
func (m *model) fromFloat(x *onnx.Value) *onnx.Value {
	if m.dt == onnx.Float {
		return x
	}
	return m.g.Cast(x, m.dt)
}
