package trainer

import (
	"errors"
	"fmt"
	"math"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/sysmem"
)

// ValidateSettings checks the loss and optimiser settings before any work
// starts, and returns one error listing every bad value (nil if all are
// good): a NaN learning rate or a negative one would otherwise surface only
// as NaN weights after the first step.
func ValidateSettings(loss LossConfig, opt AdamWConfig) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch loss.Kind {
	case LossGRPO, LossSFT:
	default:
		bad("loss_type %q: want grpo or sft", loss.Kind)
	}
	if !finite(loss.ClipEps) || loss.ClipEps < 0 || loss.ClipEps >= 1 {
		bad("clip_eps %g: want 0 ≤ clip_eps < 1", loss.ClipEps)
	}
	if !finite(loss.ClipEpsHigh) || loss.ClipEpsHigh < 0 {
		bad("clip_eps_high %g: want ≥ 0 (0: same as clip_eps)", loss.ClipEpsHigh)
	}
	if !finite(loss.KLBeta) || loss.KLBeta < 0 {
		bad("kl_beta %g: want ≥ 0", loss.KLBeta)
	}
	if !finite(loss.EntropyCoeff) || loss.EntropyCoeff < 0 {
		bad("entropy_coeff %g: want ≥ 0", loss.EntropyCoeff)
	}
	if !finite(opt.LR) || opt.LR < 0 {
		bad("lr %g: want a finite value ≥ 0", opt.LR)
	}
	if !finite(opt.Beta1) || opt.Beta1 < 0 || opt.Beta1 >= 1 {
		bad("beta1 %g: want 0 ≤ beta1 < 1", opt.Beta1)
	}
	if !finite(opt.Beta2) || opt.Beta2 < 0 || opt.Beta2 >= 1 {
		bad("beta2 %g: want 0 ≤ beta2 < 1", opt.Beta2)
	}
	if !finite(opt.Eps) || opt.Eps <= 0 {
		bad("adam eps %g: want > 0", opt.Eps)
	}
	if !finite(opt.WeightDecay) || opt.WeightDecay < 0 {
		bad("weight_decay %g: want ≥ 0", opt.WeightDecay)
	}
	if !finite(opt.MaxGradNorm) || opt.MaxGradNorm < 0 {
		bad("max_grad_norm %g: want ≥ 0 (0: no clipping)", opt.MaxGradNorm)
	}
	return errors.Join(errs...)
}

// CheckMemory refuses, before anything is loaded or allocated, a training
// whose state cannot fit in the memory available now (sysmem): full
// fine-tuning holds the float32 weights, one gradient buffer and the two
// AdamW moments (16 bytes a parameter), LoRA the frozen float32 base (4
// bytes a parameter; its adapters are small). Activations come on top, so
// passing is no promise; failing is certain.
func CheckMemory(cfg qwen2.Config, opts Options) error {
	n := uint64(qwen2.NumParams(cfg))
	perParam, what := uint64(16), "full fine-tuning (weights, gradients, two AdamW moments in float32)"
	if opts.Artifact.LoRA != nil {
		perParam, what = 4, "LoRA training (the frozen float32 base)"
	}
	return sysmem.Check(fmt.Sprintf("%s of %d parameters", what, n), n*perParam)
}
