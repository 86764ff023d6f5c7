package grad_test

// The real Qwen2 training forward (models/qwen2.BuildForward) differentiated
// end to end. This external test package imports models/qwen2 only to check
// the autodiff on the graph the trainer will use; package grad itself imports
// nothing above onnx. The builder is float32-only, so the finite-difference
// check is float32 with a looser tolerance (the float64 stack in
// model_test.go is the tight check).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/grad"
	"github.com/igsearch/igsearch/onnx/ort"
)

func TestQwen2ForwardGradients(t *testing.T) {
	t.Run("stored", func(t *testing.T) { testQwen2ForwardGradients(t, false) })
	// Per-layer gradient checkpointing must give the same gradients, which
	// the same finite differences check.
	t.Run("recomputed", func(t *testing.T) { testQwen2ForwardGradients(t, true) })
}

// layerSegments is one recompute segment per decoder layer.
func layerSegments(fw qwen2.Forward) []grad.Segment {
	var segs []grad.Segment
	for l := 0; l+1 < len(fw.Layers); l++ {
		segs = append(segs, grad.Segment{Input: fw.Layers[l], Output: fw.Layers[l+1]})
	}
	return segs
}

func testQwen2ForwardGradients(t *testing.T, recompute bool) {
	if _, err := ort.InitDefault("", ort.CPU); err != nil {
		t.Skipf("ONNX Runtime: %v", err)
	}
	cfg := qwen2.TinyConfig()
	cfg.VocabSize, cfg.HiddenSize, cfg.IntermediateSize = 48, 32, 40
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
	cfg.InitializerRange = 0.3
	cfg.TieWordEmbeddings = true
	const B, T = 2, 6
	ids := []int64{0, 0, 5, 17, 3, 40, 1, 9, 9, 22, 47, 8}
	mask := []int64{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1} // row 0 left-padded
	lossMask := make([]float32, B*(T-1))
	count := 0
	for b := range B {
		for t := 1; t < T; t++ {
			if mask[b*T+t] == 1 && mask[b*T+t-1] == 1 {
				lossMask[b*(T-1)+t-1] = 1
				count++
			}
		}
	}

	g := onnx.NewGraph("qwen2-grad")
	w := qwen2.WeightInputs(g, cfg, onnx.Float)
	batch, seq, next := onnx.Sym("batch_size"), onnx.Sym("sequence_length"), onnx.Sym("sequence_length_minus_1")
	idsV := g.Input("input_ids", onnx.Int64, batch, seq)
	maskV := g.Input("attention_mask", onnx.Int64, batch, seq)
	lm := g.Input("loss_mask", onnx.Float, batch, next)
	fw, err := qwen2.BuildForward(g, cfg, w, idsV, maskV, qwen2.Options{Entropy: true})
	if err != nil {
		t.Fatal(err)
	}
	// SFT cross-entropy with an entropy bonus, token-mean over the mask.
	per := g.Sub(g.Neg(fw.TokenLogprobs), g.Mul(fw.Entropy, g.Scalar(onnx.Float, 0.05)))
	loss := g.Mul(g.ReduceSum(g.Mul(per, lm), false), g.Scalar(onnx.Float, 1/float64(count)))
	g.Output("loss", loss)
	lossModel, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	specs := qwen2.Params(cfg)
	params := make([]*onnx.Value, len(specs))
	for i, p := range specs {
		params[i] = w[p.Name]
	}
	gopts := grad.Options{RequireReach: true}
	if recompute {
		gopts.Recompute = layerSegments(fw)
		if len(gopts.Recompute) != cfg.NumHiddenLayers {
			t.Fatalf("%d layer boundaries for %d layers", len(fw.Layers), cfg.NumHiddenLayers)
		}
	}
	grads, err := grad.Backward(g, loss, params, gopts)
	if err != nil {
		t.Fatalf("Backward: %v", err)
	}
	for i, p := range specs {
		g.Output("grad."+p.Name, grads[i])
	}
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	open := func(b []byte) *ort.Session {
		s, err := ort.NewSessionFromBytes(b, ort.Options{IntraOpThreads: 1, InterOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	full, lossOnly := open(model), open(lossModel)

	rng := rand.New(rand.NewPCG(3, 4))
	weights := qwen2.Init(cfg, 5)
	vals := map[string][]float32{}
	for _, p := range specs {
		v := weights[p.Name].Floats()
		for i := range v { // non-trivial norms and biases
			if len(p.Shape) == 1 {
				v[i] += float32(0.3 * (rng.Float64()*2 - 1))
			}
		}
		vals[p.Name] = v
	}
	run := func(s *ort.Session) ort.Outputs {
		ins := map[string]*ort.Tensor{}
		add := func(name string, tt *ort.Tensor, err error) {
			if err != nil {
				t.Fatal(err)
			}
			ins[name] = tt
		}
		for _, p := range specs {
			tt, err := ort.NewTensor(p.Shape, vals[p.Name])
			add(p.Name, tt, err)
		}
		tt, err := ort.NewTensor([]int64{B, T}, ids)
		add("input_ids", tt, err)
		tt, err = ort.NewTensor([]int64{B, T}, mask)
		add("attention_mask", tt, err)
		tt, err = ort.NewTensor([]int64{B, T - 1}, lossMask)
		add("loss_mask", tt, err)
		out, err := s.Run(ins)
		for _, tt := range ins {
			tt.Destroy()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	evalLoss := func() float64 {
		out := run(lossOnly)
		defer out.Destroy()
		v, err := ort.Values[float32](out["loss"])
		if err != nil {
			t.Fatal(err)
		}
		return float64(v[0])
	}
	out := run(full)
	defer out.Destroy()

	// Float32: directional derivatives along random ±1 directions (summing
	// many entries keeps them well above rounding noise) and the
	// largest-magnitude entry of every tensor, by central differences at h
	// and h/2 combined by Richardson extrapolation, so that h can stay large
	// against float32 rounding.
	const h, tol = 1e-2, 5e-3
	worst := 0.0
	check := func(what string, an, num, scale float64) {
		e := math.Abs(an-num) / (math.Abs(num) + scale)
		worst = max(worst, e)
		if e > tol {
			t.Errorf("%s: gradient %.6g, finite difference %.6g (rel err %.2g)", what, an, num, e)
		}
	}
	for _, p := range specs {
		an, err := ort.Values[float32](out["grad."+p.Name])
		if err != nil {
			t.Fatal(err)
		}
		orig := slices.Clone(vals[p.Name])
		u := make([]float32, len(orig))
		dot, norm := 0.0, 0.0
		for i := range u {
			u[i] = float32(rng.IntN(2)*2 - 1)
			dot += float64(an[i]) * float64(u[i])
			norm += float64(an[i]) * float64(an[i])
		}
		step := func(s float32) float64 {
			for i := range u {
				vals[p.Name][i] = orig[i] + s*u[i]
			}
			return evalLoss()
		}
		d1 := (step(h) - step(-h)) / (2 * h)
		d2 := (step(h/2) - step(-h/2)) / h
		num := (4*d2 - d1) / 3 // Richardson: cancels the h² term
		vals[p.Name] = slices.Clone(orig)
		check(p.Name+"·u", dot, num, 1e-3*math.Sqrt(norm*float64(len(u))))

		big := 0
		for i := range an {
			if math.Abs(float64(an[i])) > math.Abs(float64(an[big])) {
				big = i
			}
		}
		x := orig[big]
		at := func(s float32) float64 {
			vals[p.Name][big] = x + s
			return evalLoss()
		}
		d1 = (at(h) - at(-h)) / (2 * h)
		d2 = (at(h/2) - at(-h/2)) / h
		vals[p.Name][big] = x
		check(fmt.Sprintf("%s[%d]", p.Name, big), float64(an[big]), (4*d2-d1)/3, 1e-3)
	}
	t.Logf("%d tensors, worst rel err %.2g", len(specs), worst)
}

// TestQwen2Float16Builds differentiates the float16 training forward (the
// CUDA configuration). The CPU provider lacks float16 kernels for much of it,
// so this checks only that every rule emits well-typed float16 gradients.
func TestQwen2Float16Builds(t *testing.T) {
	cfg := qwen2.TinyConfig()
	g := onnx.NewGraph("fp16")
	w := qwen2.WeightInputs(g, cfg, onnx.Float16)
	ids := g.Input("input_ids", onnx.Int64, onnx.Sym("batch_size"), onnx.Sym("sequence_length"))
	mask := g.Input("attention_mask", onnx.Int64, onnx.Sym("batch_size"), onnx.Sym("sequence_length"))
	fw, err := qwen2.BuildForward(g, cfg, w, ids, mask, qwen2.Options{DType: onnx.Float16, Entropy: true})
	if err != nil {
		t.Fatal(err)
	}
	loss := g.ReduceSum(g.Add(fw.TokenLogprobs, fw.Entropy), false)
	var ps []*onnx.Value
	for _, p := range qwen2.Params(cfg) {
		ps = append(ps, w[p.Name])
	}
	gs, err := grad.Backward(g, loss, ps, grad.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range qwen2.Params(cfg) {
		if gs[i].Type != onnx.Float16 {
			t.Fatal(p.Name, gs[i])
		}
		g.Output("grad."+p.Name, gs[i])
	}
	if _, err := g.Marshal(); err != nil {
		t.Fatal(err)
	}
}

// TestRecomputeReadsCopies checks the structure of per-layer checkpointing
// on the Qwen2 forward: every decoder layer's Softmax and Sigmoid are
// emitted a second time, and no backward node reads the forward pass's own
// outputs of those ops (else the activations would stay alive and nothing
// would be saved). Overlapping segments are an error.
func TestRecomputeReadsCopies(t *testing.T) {
	cfg := qwen2.TinyConfig()
	g := onnx.NewGraph("recompute")
	w := qwen2.WeightInputs(g, cfg, onnx.Float)
	ids := g.Input("input_ids", onnx.Int64, onnx.Sym("batch_size"), onnx.Sym("sequence_length"))
	mask := g.Input("attention_mask", onnx.Int64, onnx.Sym("batch_size"), onnx.Sym("sequence_length"))
	fw, err := qwen2.BuildForward(g, cfg, w, ids, mask, qwen2.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loss := g.ReduceSum(fw.TokenLogprobs, false)
	var ps []*onnx.Value
	for _, p := range qwen2.Params(cfg) {
		ps = append(ps, w[p.Name])
	}
	forward := map[*onnx.Node]bool{}
	for _, n := range g.Nodes {
		forward[n] = true
	}
	if _, err := grad.Backward(g, loss, ps, grad.Options{Recompute: layerSegments(fw)}); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, n := range g.Nodes {
		if forward[n] {
			continue
		}
		count[n.Op]++
		for _, in := range n.Inputs {
			if in != nil && in.Producer != nil && forward[in.Producer] && (in.Producer.Op == "Softmax" || in.Producer.Op == "Sigmoid") {
				t.Errorf("backward node %s (%s) reads the forward %s output %s", n.Name, n.Op, in.Producer.Op, in.Name)
			}
		}
	}
	if count["Softmax"] != cfg.NumHiddenLayers || count["Sigmoid"] != cfg.NumHiddenLayers {
		t.Errorf("recomputed %d Softmax and %d Sigmoid nodes, want %d each", count["Softmax"], count["Sigmoid"], cfg.NumHiddenLayers)
	}

	g2 := onnx.NewGraph("overlap")
	w2 := qwen2.WeightInputs(g2, cfg, onnx.Float)
	ids2 := g2.Input("input_ids", onnx.Int64, onnx.Sym("batch_size"), onnx.Sym("sequence_length"))
	mask2 := g2.Input("attention_mask", onnx.Int64, onnx.Sym("batch_size"), onnx.Sym("sequence_length"))
	fw2, err := qwen2.BuildForward(g2, cfg, w2, ids2, mask2, qwen2.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ps2 []*onnx.Value
	for _, p := range qwen2.Params(cfg) {
		ps2 = append(ps2, w2[p.Name])
	}
	segs := []grad.Segment{{Input: fw2.Layers[0], Output: fw2.Layers[2]}, {Input: fw2.Layers[1], Output: fw2.Layers[2]}}
	if _, err := grad.Backward(g2, g2.ReduceSum(fw2.TokenLogprobs, false), ps2, grad.Options{Recompute: segs}); err == nil || !strings.Contains(err.Error(), "share node") {
		t.Errorf("overlapping segments: err = %v, want one saying they share a node", err)
	}
}
