package trainer

import "math"

// The loss formulas in plain Go, one function each, named as in the paper
// and in veRL's core_algos.py. BuildLoss builds the same formulas as ONNX
// graph code; these are the references it is tested against
// (formulas_test.go), and what a reader checks the graph with.

// Ratio is the importance ratio r = π(a|s)/π_old(a|s) = exp(logp − old)
// of one token.
func Ratio(logp, old float64) float64 { return math.Exp(logp - old) }

// Surrogate is the clipped PPO surrogate loss of one token with advantage A
// (veRL's compute_policy_loss):
//
//	pg = max(−A·r, −A·clip(r, 1−ε, 1+ε_high))
//
// clipped reports whether r lies outside [1−ε, 1+ε_high] (the clip
// fraction's count). epsHigh 0 means eps.
func Surrogate(logp, old, adv, eps, epsHigh float64) (pg float64, clipped bool) {
	if epsHigh == 0 {
		epsHigh = eps
	}
	r := Ratio(logp, old)
	rc := min(max(r, 1-eps), 1+epsHigh)
	return max(-adv*r, -adv*rc), r < 1-eps || r > 1+epsHigh
}

// K3 is the k3 estimator of KL(π ‖ π_ref) at one token (Schulman's
// low-variance estimator, veRL's kl_penalty "low_var_kl"):
//
//	d = ref − logp,  k3 = clip(exp(d) − d − 1, −KLClamp, KLClamp)
//
// It is ≥ 0 before clamping, 0 where the two policies agree.
func K3(logp, ref float64) float64 {
	d := ref - logp
	return min(max(math.Exp(d)-d-1, -KLClamp), KLClamp)
}

// LossInputs are per-token values of a batch, flattened in one order:
// what the gradient graph's inputs hold at its trained positions. Ref is
// needed when KLBeta > 0, Entropy when EntropyCoeff > 0; both may be nil
// otherwise.
type LossInputs struct {
	Logp, Old, Ref, Adv, Mask, Entropy []float64
}

// LossValue is a batch's loss and the sums behind its metrics, over masked
// tokens (each term weighted by its mask value).
type LossValue struct {
	Loss         float64 // the token-mean loss: Σ mask·term / Σ mask
	ClippedSum   float64 // Σ mask·[r outside the clip range]
	KLSum        float64 // Σ mask·K3
	EntropySum   float64 // Σ mask·H
	MaskSum      float64 // Σ mask
	LogprobSum   float64 // Σ mask·logp
	SurrogateSum float64 // Σ mask·pg
}

// PolicyLoss is the loss the train step minimises, as a token mean over
// the batch's masked tokens. GRPO:
//
//	loss = Σ mask·(Surrogate + β·K3 − c·H) / Σ mask
//
// with β = KLBeta and c = EntropyCoeff; SFT: loss = −Σ mask·logp / Σ mask.
// A batch without a masked token has loss 0.
func PolicyLoss(cfg LossConfig, in LossInputs) LossValue {
	var v LossValue
	sum := 0.0
	for i, m := range in.Mask {
		if m == 0 {
			continue
		}
		v.MaskSum += m
		v.LogprobSum += m * in.Logp[i]
		if in.Entropy != nil {
			v.EntropySum += m * in.Entropy[i]
		}
		if cfg.Kind == LossSFT {
			sum -= m * in.Logp[i]
			continue
		}
		pg, clipped := Surrogate(in.Logp[i], in.Old[i], in.Adv[i], cfg.ClipEps, cfg.ClipEpsHigh)
		term := pg
		v.SurrogateSum += m * pg
		if clipped {
			v.ClippedSum += m
		}
		if cfg.KLBeta > 0 {
			k := K3(in.Logp[i], in.Ref[i])
			v.KLSum += m * k
			term += cfg.KLBeta * k
		}
		if cfg.EntropyCoeff > 0 {
			term -= cfg.EntropyCoeff * in.Entropy[i]
		}
		sum += m * term
	}
	if v.MaskSum > 0 {
		v.Loss = sum / v.MaskSum
	}
	return v
}
