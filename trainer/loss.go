// Package trainer builds training artifacts as standard ONNX graphs (a
// gradient graph and an optimiser graph, like ORT's training artifacts) and
// runs the optimisation loop over them with ONNX Runtime.
package trainer

import (
	"fmt"

	"github.com/igsearch/igsearch/onnx"
)

// LossKind selects the training objective.
type LossKind string

// The objectives the trainer builds.
const (
	// LossGRPO is the clipped PPO surrogate with per-token advantages and an
	// optional k3 KL penalty to a reference policy.
	LossGRPO LossKind = "grpo"
	// LossSFT is token cross-entropy under the loss mask (warm starts).
	LossSFT LossKind = "sft"
)

// LossConfig holds the loss hyper-parameters that are baked into the graph.
type LossConfig struct {
	Kind LossKind
	// ClipEps is ε of the clipped surrogate (lower bound 1-ε).
	ClipEps float64
	// ClipEpsHigh is the upper clip (1+ε_high); 0 means ClipEps.
	ClipEpsHigh float64
	// KLBeta weights the k3 KL estimator; 0 removes the term and the
	// ref_logprobs input.
	KLBeta float64
	// EntropyCoeff weights an entropy bonus (veRL's entropy_coeff): the
	// loss subtracts EntropyCoeff·H per token, H the next-token
	// distribution's entropy, which the forward must then output. 0 removes
	// the term.
	EntropyCoeff float64
}

// KLClamp bounds each token's k3 estimate to [−KLClamp, KLClamp], as veRL's
// kl_penalty "low_var_kl" does (core_algos.py), so that one token whose
// reference log-prob is far above the policy's (k3 grows as e^(ref−logp))
// cannot dominate the loss. Outside the bounds the token's KL gradient is 0.
const KLClamp = 10

// DefaultLossConfig is GRPO with ε = 0.2 and β = 0.001.
func DefaultLossConfig() LossConfig {
	return LossConfig{Kind: LossGRPO, ClipEps: 0.2, KLBeta: 0.001}
}

func (c LossConfig) validate() error {
	switch c.Kind {
	case LossGRPO, LossSFT:
	default:
		return fmt.Errorf("loss %q: want grpo or sft", c.Kind)
	}
	if c.ClipEps < 0 || c.ClipEps >= 1 || c.ClipEpsHigh < 0 {
		return fmt.Errorf("loss: clip_eps %g / clip_eps_high %g out of range", c.ClipEps, c.ClipEpsHigh)
	}
	if c.KLBeta < 0 {
		return fmt.Errorf("loss: kl_beta %g is negative", c.KLBeta)
	}
	if c.EntropyCoeff < 0 {
		return fmt.Errorf("loss: entropy_coeff %g is negative", c.EntropyCoeff)
	}
	return nil
}

// BatchInputs are the micro-batch graph inputs besides the model's own
// input_ids and attention_mask, float32 and aligned with the token log-probs
// (in the gradient graph, [N] at the trained positions; position t scores
// input_ids[t+1]).
type BatchInputs struct {
	LossMask    *onnx.Value // loss_mask: 1 where a token is trained
	Advantages  *onnx.Value // advantages (GRPO)
	OldLogprobs *onnx.Value // old_logprobs: the rollout policy's log-probs (GRPO)
	RefLogprobs *onnx.Value // ref_logprobs: the reference policy's (GRPO with KLBeta > 0)
	LossScale   *onnx.Value // loss_scale: scalar, 1/(masked tokens in the whole batch)
}

// declareBatchInputs adds the graph inputs the loss needs for cfg.
func declareBatchInputs(g *onnx.Graph, cfg LossConfig, dims ...onnx.Dim) BatchInputs {
	in := BatchInputs{
		LossMask: g.Input("loss_mask", onnx.Float, dims...),
	}
	if cfg.Kind == LossGRPO {
		in.Advantages = g.Input("advantages", onnx.Float, dims...)
		in.OldLogprobs = g.Input("old_logprobs", onnx.Float, dims...)
		if cfg.KLBeta > 0 {
			in.RefLogprobs = g.Input("ref_logprobs", onnx.Float, dims...)
		}
	}
	in.LossScale = g.Input("loss_scale", onnx.Float)
	return in
}

// LossTerms are the loss value to differentiate and the metric sums the
// gradient graph also outputs. Metric sums are over masked tokens of the
// micro-batch; the trainer adds them up over micro-batches and divides by the
// token count.
type LossTerms struct {
	Loss       *onnx.Value // scalar, already multiplied by loss_scale
	ClippedSum *onnx.Value // tokens where the clipped branch is the active one
	KLSum      *onnx.Value // Σ mask·k3(ref, logp)
	EntropySum *onnx.Value // Σ mask·entropy, nil when no entropy is given
	MaskSum    *onnx.Value // Σ mask
	LogprobSum *onnx.Value // Σ mask·logp (the SFT log-likelihood)
}

// BuildLoss adds the loss on top of the token log-probs logp [B, T-1] (and
// the optional entropy [B, T-1]).
//
// GRPO (the PPO clipped surrogate, veRL's compute_policy_loss with the k3 KL
// of kl_penalty "low_var_kl" and the entropy bonus of dp_actor.py):
//
//	r    = exp(logp − old_logprobs)
//	pg   = max(−A·r, −A·clip(r, 1−ε, 1+ε_high))
//	k3   = clip(exp(ref − logp) − (ref − logp) − 1, −10, 10)
//	loss = Σ mask·(pg + β·k3 − c·H) · loss_scale
//
// with c = EntropyCoeff and H the entropy input. veRL takes each term's
// masked mean over a micro-batch; loss_scale (1 / the batch's masked
// tokens) makes the same token average over the whole batch.
//
// SFT: loss = −Σ mask·logp · loss_scale.
func BuildLoss(g *onnx.Graph, cfg LossConfig, logp, entropy *onnx.Value, in BatchInputs) (LossTerms, error) {
	if err := cfg.validate(); err != nil {
		return LossTerms{}, err
	}
	f := func(x float64) *onnx.Value { return g.Scalar(onnx.Float, x) }
	mask := in.LossMask
	masked := func(x *onnx.Value) *onnx.Value { return g.ReduceSum(g.Mul(x, mask), false) }

	t := LossTerms{MaskSum: g.ReduceSum(mask, false), LogprobSum: masked(logp)}
	if entropy != nil {
		t.EntropySum = masked(entropy)
	}
	switch cfg.Kind {
	case LossSFT:
		t.Loss = g.Mul(g.Neg(t.LogprobSum), in.LossScale)
		zero := f(0)
		t.ClippedSum, t.KLSum = zero, zero
		return t, nil
	}

	hi := cfg.ClipEpsHigh
	if hi == 0 {
		hi = cfg.ClipEps
	}
	ratio := g.Exp(g.Sub(logp, in.OldLogprobs))
	clipped := g.Clip(ratio, f(1-cfg.ClipEps), f(1+hi))
	negA := g.Neg(in.Advantages)
	pgUnclipped := g.Mul(negA, ratio)
	pgClipped := g.Mul(negA, clipped)
	perToken := g.Max(pgUnclipped, pgClipped)
	outside := g.Or(g.Less(ratio, f(1-cfg.ClipEps)), g.Greater(ratio, f(1+hi)))
	t.ClippedSum = masked(g.Cast(outside, onnx.Float))
	if cfg.KLBeta > 0 {
		if in.RefLogprobs == nil {
			return LossTerms{}, fmt.Errorf("loss: kl_beta %g needs ref_logprobs", cfg.KLBeta)
		}
		d := g.Sub(in.RefLogprobs, logp)
		k3 := g.Clip(g.Sub(g.Sub(g.Exp(d), d), f(1)), f(-KLClamp), f(KLClamp))
		t.KLSum = masked(k3)
		perToken = g.Add(perToken, g.Mul(f(cfg.KLBeta), k3))
	} else {
		t.KLSum = f(0)
	}
	if cfg.EntropyCoeff > 0 {
		if entropy == nil {
			return LossTerms{}, fmt.Errorf("loss: entropy_coeff %g needs the entropy of the forward", cfg.EntropyCoeff)
		}
		perToken = g.Sub(perToken, g.Mul(f(cfg.EntropyCoeff), entropy))
	}
	t.Loss = g.Mul(masked(perToken), in.LossScale)
	return t, nil
}
