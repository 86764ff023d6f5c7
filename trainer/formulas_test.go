package trainer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*max(1, math.Abs(b)) }

// TestSurrogateAndK3HandWorked checks the per-token formulas (ε = 0.2).
func TestSurrogateAndK3HandWorked(t *testing.T) {
	e := math.Exp
	cases := []struct {
		logp, old, adv float64
		pg             float64
		clipped        bool
	}{
		{-1, -1, 2, -2, false},            // r = 1: −A·r = −2
		{-2, -2.5, 1, -1.2, true},         // r = e^0.5 = 1.6487 > 1.2: max(−1.6487, −1.2) = −1.2
		{-2.5, -2, 1, -e(-0.5), true},     // r = e^−0.5 = 0.6065 < 0.8: max(−0.6065, −0.8) = −0.6065
		{-2.5, -2, -1, 0.8, true},         // A < 0, r = 0.6065: max(0.6065, 0.8) = 0.8
		{-2, -2.5, -1, e(0.5), true},      // A < 0, r = 1.6487: max(1.6487, 1.2) = 1.6487
		{-1, -1.1, 3, -3 * e(0.1), false}, // r = e^0.1 = 1.1052 inside: −3.3155
		{-3, -3, 0, 0, false},             // A = 0
	}
	for _, c := range cases {
		pg, clipped := Surrogate(c.logp, c.old, c.adv, 0.2, 0)
		if !near(pg, c.pg, 1e-12) || clipped != c.clipped {
			t.Errorf("Surrogate(%v, %v, A=%v) = %v, %v; want %v, %v", c.logp, c.old, c.adv, pg, clipped, c.pg, c.clipped)
		}
	}
	// ε_high widens the upper bound only: r = e^0.5 = 1.6487 < 1 + 0.7.
	if pg, clipped := Surrogate(-2, -2.5, 1, 0.2, 0.7); !near(pg, -e(0.5), 1e-12) || clipped {
		t.Errorf("with ε_high 0.7: %v, %v; want −1.6487, not clipped", pg, clipped)
	}
	for _, c := range []struct{ logp, ref, want float64 }{
		{-1, -1, 0},                   // the policies agree
		{-2, -2.5, e(-0.5) + 0.5 - 1}, // d = −0.5: 0.10653066
		{-2.5, -2, e(0.5) - 0.5 - 1},  // d = 0.5: 0.14872127
		{-5, -1, KLClamp},             // d = 4: e⁴ − 5 = 49.6, clamped
		{-1, -21, KLClamp},            // d = −20: 19, clamped
	} {
		if got := K3(c.logp, c.ref); !near(got, c.want, 1e-12) {
			t.Errorf("K3(%v, %v) = %v, want %v", c.logp, c.ref, got, c.want)
		}
	}
}

// TestPolicyLossHandWorked is the four-token table of
// TestLossKLClampAndEntropy (loss_graph_test.go) in plain Go: ε = 0.2,
// β = 0.5, c = 0.1; loss = 0.48442178, kl_sum = 10.10653066.
func TestPolicyLossHandWorked(t *testing.T) {
	cfg := LossConfig{Kind: LossGRPO, ClipEps: 0.2, KLBeta: 0.5, EntropyCoeff: 0.1}
	v := PolicyLoss(cfg, LossInputs{
		Logp: []float64{-1, -5, -2, -3}, Old: []float64{-1, -5, -2.5, -3}, Adv: []float64{2, 0, 1, 1},
		Ref: []float64{-1, -1, -2.5, -33}, Entropy: []float64{1.5, 0.5, 2, 1}, Mask: []float64{1, 1, 1, 0},
	})
	if !near(v.Loss, 0.4844217766, 1e-9) || !near(v.KLSum, 10.1065306597, 1e-9) || v.MaskSum != 3 || v.ClippedSum != 1 {
		t.Fatalf("PolicyLoss = %+v; want loss 0.48442178, kl_sum 10.10653066, mask 3, clipped 1", v)
	}
	// SFT: −(−1 − 5)/2 = 3 over the first two tokens.
	sft := PolicyLoss(LossConfig{Kind: LossSFT}, LossInputs{Logp: []float64{-1, -5, -7}, Mask: []float64{1, 1, 0}})
	if sft.Loss != 3 {
		t.Fatalf("SFT loss %v, want 3", sft.Loss)
	}
	if none := PolicyLoss(cfg, LossInputs{Logp: []float64{-1}, Mask: []float64{0}}); none.Loss != 0 {
		t.Fatalf("no masked token: loss %v, want 0", none.Loss)
	}
}

// TestBuildLossMatchesPolicyLoss runs the graph of BuildLoss on random
// tokens for each kind of loss and compares its outputs with PolicyLoss,
// the plain-Go reference.
func TestBuildLossMatchesPolicyLoss(t *testing.T) {
	initORT(t)
	const n = 257
	rng := rand.New(rand.NewPCG(17, 1))
	in := LossInputs{}
	for i := 0; i < n; i++ {
		lp := -6 * rng.Float64()
		in.Logp = append(in.Logp, lp)
		in.Old = append(in.Old, lp+rng.Float64()-0.5) // ratios e^±0.5: some clipped
		in.Ref = append(in.Ref, lp+8*rng.Float64()-3) // some k3 clamped
		in.Adv = append(in.Adv, rng.NormFloat64())
		in.Entropy = append(in.Entropy, 3*rng.Float64())
		in.Mask = append(in.Mask, float64(rng.IntN(4)/3)) // a quarter masked in
	}
	for _, cfg := range []LossConfig{
		{Kind: LossGRPO, ClipEps: 0.2},
		{Kind: LossGRPO, ClipEps: 0.2, ClipEpsHigh: 0.28, KLBeta: 0.001},
		{Kind: LossGRPO, ClipEps: 0.1, KLBeta: 0.5, EntropyCoeff: 0.01},
		{Kind: LossSFT},
	} {
		want := PolicyLoss(cfg, in)
		got := runLossGraph(t, cfg, in, 1/want.MaskSum)
		check := func(name string, g, w float64) {
			t.Helper()
			if !near(g, w, 2e-5) {
				t.Errorf("%+v: graph %s = %.8g, PolicyLoss %.8g", cfg, name, g, w)
			}
		}
		check("loss", got["loss"], want.Loss)
		check("mask_sum", got["mask_sum"], want.MaskSum)
		check("logprob_sum", got["logprob_sum"], want.LogprobSum)
		check("entropy_sum", got["entropy_sum"], want.EntropySum)
		if cfg.Kind == LossGRPO {
			check("clipped_sum", got["clipped_sum"], want.ClippedSum)
			check("kl_sum", got["kl_sum"], want.KLSum)
		}
	}
}

// runLossGraph builds BuildLoss over [n] token inputs and runs it once.
func runLossGraph(t *testing.T, cfg LossConfig, in LossInputs, scale float64) map[string]float64 {
	t.Helper()
	n := len(in.Logp)
	g := onnx.NewGraph("loss")
	dim := onnx.D(int64(n))
	logp := g.Input("logp", onnx.Float, dim)
	ent := g.Input("entropy", onnx.Float, dim)
	bi := declareBatchInputs(g, cfg, dim)
	terms, err := BuildLoss(g, cfg, logp, ent, bi)
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]*onnx.Value{"loss": terms.Loss, "mask_sum": terms.MaskSum, "logprob_sum": terms.LogprobSum,
		"entropy_sum": terms.EntropySum, "clipped_sum": terms.ClippedSum, "kl_sum": terms.KLSum}
	for name, v := range outs {
		g.Output(name, g.Identity(v))
	}
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f32 := func(xs []float64) []float32 {
		out := make([]float32, len(xs))
		for i, x := range xs {
			out[i] = float32(x)
		}
		return out
	}
	feed := map[string][]float64{"logp": in.Logp, "entropy": in.Entropy, "loss_mask": in.Mask}
	if cfg.Kind == LossGRPO {
		feed["advantages"], feed["old_logprobs"] = in.Adv, in.Old
		if cfg.KLBeta > 0 {
			feed["ref_logprobs"] = in.Ref
		}
	}
	inputs := map[string]*ort.Tensor{}
	defer func() {
		for _, x := range inputs {
			x.Destroy()
		}
	}()
	for name, v := range feed {
		if inputs[name], err = ort.NewTensor([]int64{int64(n)}, f32(v)); err != nil {
			t.Fatal(err)
		}
	}
	if inputs["loss_scale"], err = ort.NewTensor([]int64{}, []float32{float32(scale)}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(inputs)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	res := map[string]float64{}
	for name := range outs {
		v, err := ort.Values[float32](out[name])
		if err != nil {
			t.Fatal(err)
		}
		res[name] = float64(v[0])
	}
	return res
}
