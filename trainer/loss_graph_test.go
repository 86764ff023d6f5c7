package trainer

import (
	"math"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/grad"
	"github.com/igsearch/igsearch/onnx/ort"
)

// TestLossKLClampAndEntropy runs BuildLoss and its gradient on four
// hand-worked tokens (ε = 0.2, β = 0.5, entropy_coeff c = 0.1, loss_scale
// 1/3):
//
//	tok  logp  old   A  ref   H    mask  pg                 k3                         −c·H
//	0    −1    −1    2  −1    1.5  1     −2 (r = 1)         0                          −0.15
//	1    −5    −5    0  −1    0.5  1     0                  e⁴−4−1 = 49.6 → clamped 10  −0.05
//	2    −2    −2.5  1  −2.5  2    1     −1.2 (r = e^0.5,   e^−0.5 + 0.5 − 1 = 0.10653  −0.2
//	                                       clipped)
//	3    −3    −3    1  −33   1    0     (masked: k3 = 29 → 10, no effect)
//
// loss = (−2.15 + (0 + 0.5·10 − 0.05) + (−1.2 + 0.5·0.10653 − 0.2)) / 3
// = 0.48442178; kl_sum = 10.10653066.
// dloss/dlogp = [−2, 0 (A = 0 and the clamped k3 has no gradient; unclamped
// it would be β(1 − e⁴) = −26.8), β(1 − e^−0.5) = 0.19673467 (the clipped
// surrogate has none), 0] / 3; dloss/dH = −c·mask / 3.
func TestLossKLClampAndEntropy(t *testing.T) {
	initORT(t)
	g := onnx.NewGraph("loss")
	n := onnx.D(4)
	logp := g.Input("logp", onnx.Float, n)
	ent := g.Input("entropy", onnx.Float, n)
	cfg := LossConfig{Kind: LossGRPO, ClipEps: 0.2, KLBeta: 0.5, EntropyCoeff: 0.1}
	in := declareBatchInputs(g, cfg, n)
	terms, err := BuildLoss(g, cfg, logp, ent, in)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := grad.Backward(g, terms.Loss, []*onnx.Value{logp, ent}, grad.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("loss", terms.Loss)
	g.Output("kl_sum", terms.KLSum)
	g.Output("d_logp", grads[0])
	g.Output("d_entropy", grads[1])
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	feed := map[string][]float32{
		"logp":         {-1, -5, -2, -3},
		"entropy":      {1.5, 0.5, 2, 1},
		"loss_mask":    {1, 1, 1, 0},
		"advantages":   {2, 0, 1, 1},
		"old_logprobs": {-1, -5, -2.5, -3},
		"ref_logprobs": {-1, -1, -2.5, -33},
	}
	inputs := map[string]*ort.Tensor{}
	for name, v := range feed {
		if inputs[name], err = ort.NewTensor([]int64{4}, v); err != nil {
			t.Fatal(err)
		}
	}
	if inputs["loss_scale"], err = ort.NewTensor([]int64{}, []float32{1.0 / 3}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, x := range inputs {
			x.Destroy()
		}
	}()
	out, err := s.Run(inputs)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	get := func(name string) []float32 {
		v, err := ort.Values[float32](out[name])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	check := func(name string, got []float32, want ...float64) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 2e-6*max(1, math.Abs(want[i])) {
				t.Errorf("%s[%d] = %.8g, want %.8g", name, i, got[i], want[i])
			}
		}
	}
	check("loss", get("loss"), 0.4844217766)
	check("kl_sum", get("kl_sum"), 10.1065306597)
	check("d_logp", get("d_logp"), -2.0/3, 0, 0.0655782234, 0)
	check("d_entropy", get("d_entropy"), -0.1/3, -0.1/3, -0.1/3, 0)

	if _, err := BuildLoss(onnx.NewGraph("x"), cfg, logp, nil, in); err == nil {
		t.Error("entropy_coeff without an entropy input accepted")
	}
	if err := (LossConfig{Kind: LossGRPO, EntropyCoeff: -1}).validate(); err == nil {
		t.Error("negative entropy_coeff accepted")
	}
}

// TestEntropyBonusGradient checks the entropy bonus through the whole
// training forward: with advantages 0 and no KL the GRPO loss is
// −entropy_coeff·Σ mask·H·scale, so the gradient graph's gradient of each
// checked weight W must match a central finite difference of that loss
// along g = ∇_W L itself: (L(W + h·ĝ) − L(W − h·ĝ)) / 2h = |g|.
func TestEntropyBonusGradient(t *testing.T) {
	ck, _ := loadFixture(t)
	b := sftBatch(ck.Config)
	for _, m := range b.LossMask {
		b.Advantages = append(b.Advantages, make([]float32, len(m)))
		b.OldLogprobs = append(b.OldLogprobs, make([]float32, len(m)))
	}
	opts := Options{
		Artifact: ArtifactOptions{Loss: LossConfig{Kind: LossGRPO, ClipEps: 0.2, EntropyCoeff: 1}},
		Optim:    AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1},
	}
	tr, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	scale := float32(1.0 / 41)
	run := func() (map[string][]float32, float64) {
		g := map[string][]float32{}
		for _, p := range tr.art.Trainable {
			g[p.Name] = make([]float32, numElements(p.Shape))
		}
		out, err := tr.runGradInto(b, microBatch{0, len(b.InputIDs), 0}, scale, g)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Destroy()
		l, err := ort.Values[float32](out[outLoss])
		if err != nil {
			t.Fatal(err)
		}
		return g, float64(l[0])
	}
	grads, loss := run()
	if loss >= 0 {
		t.Fatalf("loss %g: want −Σ H·scale < 0", loss)
	}
	for _, name := range []string{"lm_head.weight", "model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"} {
		g := grads[name]
		norm := 0.0
		for _, x := range g {
			norm += float64(x) * float64(x)
		}
		norm = math.Sqrt(norm)
		w := tr.state.Params[name]
		orig := append([]float32(nil), w...)
		const h = 1e-2
		shift := func(sign float64) float64 {
			for i := range w {
				w[i] = float32(float64(orig[i]) + sign*h*float64(g[i])/norm)
			}
			_, l := run()
			return l
		}
		fd := (shift(1) - shift(-1)) / (2 * h)
		copy(w, orig)
		t.Logf("%s: |∇L| %.6g, finite difference %.6g", name, norm, fd)
		if norm == 0 || math.Abs(fd-norm) > 1e-2*norm {
			t.Errorf("%s: gradient norm %g, finite difference along it %g", name, norm, fd)
		}
	}
}
