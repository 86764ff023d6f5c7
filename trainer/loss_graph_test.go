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
