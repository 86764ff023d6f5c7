package trainer

import (
	"fmt"
	"math"

	"github.com/igsearch/igsearch/onnx"
)

// Param names one trainable tensor and its shape.
type Param struct {
	Name  string // Hugging Face tensor name, e.g. model.layers.0.mlp.up_proj.weight
	Shape []int64
}

// Names of the optimiser graph's inputs and outputs for parameter p:
// param/grad/moment inputs, and the updated values as outputs.
func paramIn(p string) string  { return "param." + p }
func gradIn(p string) string   { return "grad." + p }
func mIn(p string) string      { return "m." + p }
func vIn(p string) string      { return "v." + p }
func paramOut(p string) string { return "new_param." + p }
func mOut(p string) string     { return "new_m." + p }
func vOut(p string) string     { return "new_v." + p }

// AdamWConfig holds the AdamW and clipping hyper-parameters (torch names).
type AdamWConfig struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64 // decoupled, applied to every tensor (torch.optim.AdamW)
	MaxGradNorm float64 // global 2-norm clip; 0 disables clipping
}

// DefaultAdamW is torch.optim.AdamW's defaults with clipping at 1.0.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1.0}
}

// optimScalars are the per-step scalar inputs of the optimiser graph. The
// bias corrections are computed here in float64, as torch computes them in
// Python floats, and enter the graph as float32 scalars.
func optimScalars(c AdamWConfig, step int64) map[string]float32 {
	bc1 := 1 - math.Pow(c.Beta1, float64(step))
	bc2 := 1 - math.Pow(c.Beta2, float64(step))
	maxNorm := c.MaxGradNorm
	if maxNorm <= 0 {
		maxNorm = math.MaxFloat32
	}
	return map[string]float32{
		"decay":         float32(1 - c.LR*c.WeightDecay),
		"beta1_comp":    float32(1 - c.Beta1),
		"beta2":         float32(c.Beta2),
		"beta2_comp":    float32(1 - c.Beta2),
		"eps":           float32(c.Eps),
		"step_size":     float32(c.LR / bc1),
		"bc2_sqrt":      float32(math.Sqrt(bc2)),
		"max_grad_norm": float32(maxNorm),
	}
}

// BuildOptimGraph makes the optimiser step graph: global grad-norm clipping
// (torch.nn.utils.clip_grad_norm_) followed by AdamW (torch semantics:
// decoupled weight decay, bias-corrected moments). Inputs are each
// parameter's value, summed gradient and moments plus the scalars of
// optimScalars; outputs are the updated parameters and moments and
// grad_norm, the global norm before clipping.
//
//	norm  = sqrt(Σ_p Σ g_p²);  c = min(1, max_norm/(norm + 1e-6));  g ← c·g
//	p ← p·(1 − lr·wd)
//	m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²
//	p ← p − (lr/(1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + ε)
func BuildOptimGraph(params []Param) (*onnx.Graph, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("optimizer graph: no parameters")
	}
	g := onnx.NewGraph("igsearch_adamw")
	g.Doc = "global grad-norm clipping + AdamW (torch semantics), built by igsearch"
	sc := map[string]*onnx.Value{}
	for _, name := range []string{"decay", "beta1_comp", "beta2", "beta2_comp", "eps", "step_size", "bc2_sqrt", "max_grad_norm"} {
		sc[name] = g.Input(name, onnx.Float)
	}
	type slot struct{ p, grad, m, v *onnx.Value }
	slots := make([]slot, len(params))
	var sumSq *onnx.Value
	for i, p := range params {
		dims := onnx.Dims(p.Shape...)
		s := slot{
			p:    g.Input(paramIn(p.Name), onnx.Float, dims...),
			grad: g.Input(gradIn(p.Name), onnx.Float, dims...),
			m:    g.Input(mIn(p.Name), onnx.Float, dims...),
			v:    g.Input(vIn(p.Name), onnx.Float, dims...),
		}
		slots[i] = s
		sq := g.ReduceSum(g.Mul(s.grad, s.grad), false)
		if sumSq == nil {
			sumSq = sq
		} else {
			sumSq = g.Add(sumSq, sq)
		}
	}
	norm := g.Sqrt(sumSq)
	g.Output("grad_norm", norm)
	one := g.Scalar(onnx.Float, 1)
	coef := g.Min(g.Div(sc["max_grad_norm"], g.Add(norm, g.Scalar(onnx.Float, 1e-6))), one)
	for i, p := range params {
		s := slots[i]
		grad := g.Mul(s.grad, coef)
		decayed := g.Mul(s.p, sc["decay"])
		m := g.Add(s.m, g.Mul(sc["beta1_comp"], g.Sub(grad, s.m)))
		v := g.Add(g.Mul(s.v, sc["beta2"]), g.Mul(sc["beta2_comp"], g.Mul(grad, grad)))
		denom := g.Add(g.Div(g.Sqrt(v), sc["bc2_sqrt"]), sc["eps"])
		newP := g.Sub(decayed, g.Mul(sc["step_size"], g.Div(m, denom)))
		g.Output(paramOut(p.Name), newP)
		g.Output(mOut(p.Name), m)
		g.Output(vOut(p.Name), v)
	}
	return g, nil
}
