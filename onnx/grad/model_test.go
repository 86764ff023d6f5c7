package grad

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

// tinyLM is a Qwen2-shaped decoder in float64 built from the onnx helpers:
// embedding Gather, RMSNorm (Pow/ReduceMean/Sqrt/Div), rotary (Slice/Concat/
// Mul with Cos/Sin tables), grouped-query attention (5-D broadcast MatMul,
// Softmax, a causal + padding mask through Where), a SiLU MLP, a tied
// lm_head, log-softmax + GatherElements of the next tokens, and a PPO/GRPO
// loss (clipped ratio, Min, k3 KL, entropy bonus) averaged over a token mask.
type tinyLM struct {
	vocab, hidden, heads, kvHeads, headDim, inter, layers int64
	batch, seq                                            int64
}

// param names and shapes in HF layout.
func (m tinyLM) params() []pspec {
	h, d, i := m.hidden, m.headDim, m.inter
	ps := []pspec{{name: "embed", dims: []int64{m.vocab, h}}}
	for l := range m.layers {
		p := fmt.Sprintf("l%d.", l)
		ps = append(ps,
			pspec{name: p + "ln1", dims: []int64{h}},
			pspec{name: p + "wq", dims: []int64{m.heads * d, h}},
			pspec{name: p + "bq", dims: []int64{m.heads * d}},
			pspec{name: p + "wk", dims: []int64{m.kvHeads * d, h}},
			pspec{name: p + "bk", dims: []int64{m.kvHeads * d}},
			pspec{name: p + "wv", dims: []int64{m.kvHeads * d, h}},
			pspec{name: p + "wo", dims: []int64{h, m.heads * d}},
			pspec{name: p + "ln2", dims: []int64{h}},
			pspec{name: p + "wg", dims: []int64{i, h}},
			pspec{name: p + "wu", dims: []int64{i, h}},
			pspec{name: p + "wd", dims: []int64{h, i}},
		)
	}
	return append(ps, pspec{name: "norm", dims: []int64{h}})
}

// build writes the forward and the loss; w maps param names to values.
func (m tinyLM) build(g *onnx.Graph, w map[string]*onnx.Value, ids, mask []int64, rng *rand.Rand) *onnx.Value {
	dt := onnx.Double
	B, T := m.batch, m.seq
	sc := func(x float64) *onnx.Value { return g.Scalar(dt, x) }
	idsV := iconst(g, []int64{B, T}, ids...)
	maskV := iconst(g, []int64{B, T}, mask...)

	rms := func(x *onnx.Value, wt *onnx.Value) *onnx.Value {
		v := g.ReduceMean(g.Pow(x, sc(2)), true, -1)
		return g.Mul(wt, g.Div(x, g.Sqrt(g.Add(v, sc(1e-6)))))
	}
	linear := func(x *onnx.Value, name string) *onnx.Value {
		return g.MatMul(x, g.Transpose(w[name], 1, 0)) // HF [out, in] layout
	}
	// Rotary tables from positions = max(cumsum(mask) - 1, 0): [B,T,1,D].
	pos := g.Max(g.Sub(g.CumSum(maskV, 1), g.Scalar(onnx.Int64, 1)), g.Scalar(onnx.Int64, 0))
	inv := make([]float64, m.headDim/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(10000, float64(2*i)/float64(m.headDim))
	}
	freqs := g.Mul(g.Unsqueeze(g.Cast(pos, dt), -1), dconst(g, []int64{m.headDim / 2}, inv...))
	emb := g.Unsqueeze(g.Concat(-1, freqs, freqs), 2)
	cos := g.Node("Cos", "", []*onnx.Value{emb}, nil, onnx.OutSpec{Type: dt, Shape: emb.Shape})[0]
	sin := g.Node("Sin", "", []*onnx.Value{emb}, nil, onnx.OutSpec{Type: dt, Shape: emb.Shape})[0]
	rotary := func(x *onnx.Value) *onnx.Value {
		half := m.headDim / 2
		x1 := g.Slice(x, []int64{-1}, []int64{0}, []int64{half})
		x2 := g.Slice(x, []int64{-1}, []int64{half}, []int64{2 * half})
		return g.Add(g.Mul(x, cos), g.Mul(g.Concat(-1, g.Neg(x2), x1), sin))
	}
	// Causal + padding mask [B,1,1,T,T]: query t sees key s ≤ t with mask[s] = 1.
	keep := make([]bool, B*T*T)
	for b := range B {
		for t := range T {
			for s := range T {
				keep[(b*T+t)*T+s] = s <= t && mask[b*T+s] == 1
			}
		}
	}
	keepV := bconst(g, []int64{B, 1, 1, T, T}, keep...)

	rep := m.heads / m.kvHeads
	x := g.Gather(w["embed"], idsV, 0) // [B,T,H]
	for l := range m.layers {
		p := fmt.Sprintf("l%d.", l)
		xn := rms(x, w[p+"ln1"])
		q := g.Add(linear(xn, p+"wq"), w[p+"bq"])
		k := g.Add(linear(xn, p+"wk"), w[p+"bk"])
		v := linear(xn, p+"wv")
		q = rotary(g.Reshape(q, 0, 0, m.heads, m.headDim))
		k = rotary(g.Reshape(k, 0, 0, m.kvHeads, m.headDim))
		v = g.Reshape(v, 0, 0, m.kvHeads, m.headDim)
		// Group the query heads by KV head: q [B,kv,rep,T,D], k,v [B,kv,1,T,D].
		qg := g.Reshape(g.Transpose(q, 0, 2, 1, 3), 0, m.kvHeads, rep, T, m.headDim)
		kg := g.Unsqueeze(g.Transpose(k, 0, 2, 1, 3), 2)
		vg := g.Unsqueeze(g.Transpose(v, 0, 2, 1, 3), 2)
		scores := g.Mul(g.MatMul(qg, g.Transpose(kg, 0, 1, 2, 4, 3)), sc(1/math.Sqrt(float64(m.headDim))))
		probs := g.Softmax(g.Where(keepV, scores, sc(-1e9)), -1)
		o := g.MatMul(probs, vg) // [B,kv,rep,T,D]
		o = g.Reshape(g.Transpose(g.Reshape(o, 0, m.heads, T, m.headDim), 0, 2, 1, 3), 0, 0, m.heads*m.headDim)
		x = g.Add(x, linear(o, p+"wo"))
		xn = rms(x, w[p+"ln2"])
		gate := linear(xn, p+"wg")
		silu := g.Mul(gate, g.Sigmoid(gate))
		x = g.Add(x, linear(g.Mul(silu, linear(xn, p+"wu")), p+"wd"))
	}
	hdn := g.Slice(rms(x, w["norm"]), []int64{1}, []int64{0}, []int64{-1}) // positions 0..T-2
	logits := g.MatMul(hdn, g.Transpose(w["embed"], 1, 0))                 // tied lm_head
	logp := g.LogSoftmax(logits, -1)
	next := g.Slice(idsV, []int64{1}, []int64{1}, []int64{math.MaxInt64})
	lp := g.Squeeze(g.GatherElements(logp, g.Unsqueeze(next, -1), -1), -1) // [B,T-1]
	entropy := g.Neg(g.ReduceSum(g.Mul(g.Exp(logp), logp), false, -1))

	// PPO/GRPO: -min(r·A, clip(r, 1-ε, 1+ε)·A) + β·k3(ref, logp) - 0.01·entropy.
	n := B * (T - 1)
	rnd := func(lo, hi float64) *onnx.Value {
		v := make([]float64, n)
		for i := range v {
			v[i] = lo + (hi-lo)*rng.Float64()
		}
		return dconst(g, []int64{B, T - 1}, v...)
	}
	old := rnd(-3, -1.8)
	ref := rnd(-3, -1.8)
	adv := rnd(-1, 1)
	ratio := g.Exp(g.Sub(lp, old))
	surr := g.Min(g.Mul(ratio, adv), g.Mul(g.Clip(ratio, sc(0.8), sc(1.2)), adv))
	d := g.Sub(ref, lp)
	kl := g.Sub(g.Sub(g.Exp(d), d), sc(1))
	per := g.Sub(g.Add(g.Neg(surr), g.Mul(kl, sc(0.1))), g.Mul(entropy, sc(0.01)))
	lm := make([]float64, n)
	cnt := 0.0
	for b := range B {
		for t := int64(1); t < T; t++ {
			if mask[b*T+t] == 1 {
				lm[b*(T-1)+t-1] = 1
				cnt++
			}
		}
	}
	return g.Mul(g.ReduceSum(g.Mul(per, dconst(g, []int64{B, T - 1}, lm...)), false), sc(1/cnt))
}

// TestTinyModelGradients checks a Qwen2-shaped stack end to end in float64:
// each parameter's gradient on a few entries (the largest and random ones)
// and along a random direction, against central differences of the loss.
func TestTinyModelGradients(t *testing.T) {
	initORT(t)
	m := tinyLM{vocab: 13, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, inter: 12, layers: 2, batch: 2, seq: 5}
	ids := []int64{1, 5, 7, 2, 12, 0, 3, 3, 9, 4}
	mask := []int64{1, 1, 1, 1, 1, 0, 1, 1, 1, 1} // row 1 left-padded
	rng := rand.New(rand.NewPCG(1, 2))

	g := onnx.NewGraph("tinylm")
	specs := m.params()
	w := map[string]*onnx.Value{}
	params := make([]*onnx.Value, len(specs))
	vals := make([][]float64, len(specs))
	for i, p := range specs {
		params[i] = g.Input(p.name, onnx.Double, onnx.Dims(p.dims...)...)
		w[p.name] = params[i]
		vals[i] = make([]float64, numel(p.dims))
		norm := strings.Contains(p.name, "ln") || p.name == "norm"
		for j := range vals[i] {
			vals[i][j] = 0.4 * (rng.Float64()*2 - 1)
			if norm {
				vals[i][j] = 1 + vals[i][j]/2 // norm weights around 1
			}
		}
	}
	loss := m.build(g, w, ids, mask, rng)
	g.Output("loss", loss)
	lossModel, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	grads, err := Backward(g, loss, params, Options{})
	if err != nil {
		t.Fatalf("Backward: %v", err)
	}
	for i, p := range specs {
		g.Output("grad_"+p.name, grads[i])
	}
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	full, lossOnly := openSession(t, model, true), openSession(t, lossModel, true)
	feeds := func() []feed {
		fs := make([]feed, len(specs))
		for i, p := range specs {
			fs[i] = feed{p.name, p.dims, slices.Clone(vals[i])}
		}
		return fs
	}
	res, err := full.run(feeds())
	if err != nil {
		t.Fatal(err)
	}
	evalLoss := func() float64 {
		r, err := lossOnly.run(feeds())
		if err != nil {
			t.Fatal(err)
		}
		return r["loss"][0]
	}
	if base := evalLoss(); math.Abs(base-res["loss"][0]) > 1e-12 {
		t.Fatalf("loss differs between the sessions: %g vs %g", base, res["loss"][0])
	}
	const h, tol = 1e-5, 1e-6
	worst := 0.0
	check := func(what string, an, num float64) {
		e := math.Abs(an-num) / (1e-3 + math.Abs(num))
		worst = max(worst, e)
		if e > tol {
			t.Errorf("%s: gradient %.9g, finite difference %.9g (rel err %.2g)", what, an, num, e)
		}
	}
	for i, p := range specs {
		an := res["grad_"+p.name]
		// The largest-magnitude entry and two random ones.
		big := 0
		for j := range an {
			if math.Abs(an[j]) > math.Abs(an[big]) {
				big = j
			}
		}
		for _, j := range []int{big, rng.IntN(len(an)), rng.IntN(len(an))} {
			x := vals[i][j]
			vals[i][j] = x + h
			lp := evalLoss()
			vals[i][j] = x - h
			lm := evalLoss()
			vals[i][j] = x
			check(fmt.Sprintf("%s[%d]", p.name, j), an[j], (lp-lm)/(2*h))
		}
		// Directional: Σ g·u against (L(w+hu) - L(w-hu)) / 2h.
		u := make([]float64, len(an))
		dot := 0.0
		for j := range u {
			u[j] = rng.Float64()*2 - 1
			dot += an[j] * u[j]
		}
		orig := slices.Clone(vals[i])
		for j := range u {
			vals[i][j] = orig[j] + h*u[j]
		}
		lp := evalLoss()
		for j := range u {
			vals[i][j] = orig[j] - h*u[j]
		}
		lm := evalLoss()
		vals[i] = orig
		check(p.name+"·u", dot, (lp-lm)/(2*h))
	}
	t.Logf("loss %.6g, %d parameters, worst rel err %.2g", res["loss"][0], len(specs), worst)
}
