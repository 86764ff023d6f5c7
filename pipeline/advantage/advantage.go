// Package advantage computes per-token advantages for GRPO and IG-GRPO as
// pure functions:
//
//	outcome:  A_i = (R_i − mean_g R) / (std_g R + ε)     (adv_norm mean_std)
//	          A_i =  R_i − mean_g R                       (adv_norm mean)
//	IG:       Â_t = normalisation of IG_t over all scored search steps of the group (ig_norm)
//	token:    A_tok = A_i + λ·Â_t   on the tokens of step t (ig_scope), λ = ig_coef
//	          A_tok = A_i           on every other generated token
//	          A_tok = 0             on prompt and observation tokens (loss mask 0)
//
// std is the sample standard deviation (n − 1), and a group of one sample
// has mean 0 and std 1, as compute_grpo_outcome_advantage in veRL's
// verl/trainer/ppo/core_algos.py (torch.std is unbiased). The IG z-score of
// a group with a single scored search step is 0: one IG has no spread to be
// measured against, and its raw value in nats would otherwise enter the
// advantage unnormalised. Groups are the G samples of one rollout question
// (Groups), never merged by a shared question id, as veRL keys them by a
// fresh uid per prompt.
//
// The additive IG term is our choice: the IG-Search paper does not publish
// its modulation. It keeps a gradient when every trajectory of a group
// fails: then all R_i are equal, A_i = 0, and the query tokens still get
// λ·Â_t.
package advantage

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Epsilon is ε of the normalisations.
const Epsilon = 1e-6

// AdvNorm is the adv_norm setting of the outcome advantage.
type AdvNorm string

// The outcome normalisations.
const (
	// AdvNormMean subtracts the group mean (Dr. GRPO).
	AdvNormMean AdvNorm = "mean"
	// AdvNormMeanStd subtracts the group mean and divides by std + ε (GRPO).
	AdvNormMeanStd AdvNorm = "mean_std"
)

// ParseAdvNorm checks an adv_norm value.
func ParseAdvNorm(s string) (AdvNorm, error) {
	switch n := AdvNorm(s); n {
	case AdvNormMean, AdvNormMeanStd:
		return n, nil
	}
	return "", fmt.Errorf("advantage: bad adv_norm %q (want mean or mean_std)", s)
}

// groupStats is the mean and sample std of xs, with veRL's rule for a
// single value: mean 0, std 1. An empty xs gives 0, 1.
func groupStats(xs []float64) (mean, std float64) {
	if len(xs) <= 1 {
		return 0, 1
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1))
}

// Outcome is the GRPO outcome advantage of each sample of one group (the G
// samples of one question) from their rewards.
func Outcome(rewards []float64, norm AdvNorm) []float64 {
	mean, std := groupStats(rewards)
	out := make([]float64, len(rewards))
	for i, r := range rewards {
		if norm == AdvNormMean {
			out[i] = r - mean
		} else {
			out[i] = (r - mean) / (std + Epsilon)
		}
	}
	return out
}

// IGNorm is the ig_norm setting: "zscore", "none" or "clip:C".
type IGNorm struct {
	// Kind is "zscore", "none" or "clip".
	Kind string
	// Clip is C of "clip:C": Â = clamp(IG, −C, C), with no centring.
	Clip float64
}

// ParseIGNorm parses an ig_norm value.
func ParseIGNorm(s string) (IGNorm, error) {
	switch s {
	case "zscore", "none":
		return IGNorm{Kind: s}, nil
	}
	if c, ok := strings.CutPrefix(s, "clip:"); ok {
		v, err := strconv.ParseFloat(c, 64)
		if err == nil && v > 0 {
			return IGNorm{Kind: "clip", Clip: v}, nil
		}
	}
	return IGNorm{}, fmt.Errorf("advantage: bad ig_norm %q (want zscore, none or clip:C with C > 0)", s)
}

// String is the flag form of n.
func (n IGNorm) String() string {
	if n.Kind == "clip" {
		return "clip:" + strconv.FormatFloat(n.Clip, 'g', -1, 64)
	}
	return n.Kind
}

// NormalizeIG maps the IG of every scored search step of one group
// (igs[i] = the step IGs of sample i) to Â, keeping the shape. zscore is
// (IG − mean)/(std + ε) over all the group's steps together, with the same
// std as Outcome, and 0 for a group's only step; none is the identity;
// clip:C clamps to [−C, C].
func NormalizeIG(igs [][]float64, norm IGNorm) [][]float64 {
	var all []float64
	for _, s := range igs {
		all = append(all, s...)
	}
	mean, std := groupStats(all)
	if len(all) == 1 {
		// One step: it is its group's mean, so its z-score is 0.
		mean = all[0]
	}
	out := make([][]float64, len(igs))
	for i, s := range igs {
		out[i] = make([]float64, len(s))
		for j, x := range s {
			switch norm.Kind {
			case "none":
				out[i][j] = x
			case "clip":
				out[i][j] = min(max(x, -norm.Clip), norm.Clip)
			default:
				out[i][j] = (x - mean) / (std + Epsilon)
			}
		}
	}
	return out
}

// Scope is the ig_scope setting: which tokens of step t get λ·Â_t.
type Scope string

// The IG scopes.
const (
	// ScopeQuery: the query tokens, between <search> and </search>.
	ScopeQuery Scope = "query"
	// ScopeStep: every token the model generated in the step.
	ScopeStep Scope = "step"
)

// ParseScope checks an ig_scope value.
func ParseScope(s string) (Scope, error) {
	switch c := Scope(s); c {
	case ScopeQuery, ScopeStep:
		return c, nil
	}
	return "", fmt.Errorf("advantage: bad ig_scope %q (want query or step)", s)
}

// Span is a half-open range [Start, End) of token positions.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// StepSpans are the token spans of one search step that the IG term can
// touch.
type StepSpans struct {
	// Query is the query's tokens (ScopeQuery).
	Query Span
	// Generated are all the tokens the model generated for the step
	// (ScopeStep): its turn up to </search>, and its refine block.
	Generated []Span
}

// spans returns the spans that scope selects.
func (s StepSpans) spans(scope Scope) []Span {
	if scope == ScopeStep {
		return s.Generated
	}
	return []Span{s.Query}
}

// StepValue is a value attached to one search step (by its index into a
// sample's []StepSpans): an IG or an Â.
type StepValue struct {
	Step  int
	Value float64
}

// Tokens is the per-token advantage of one sample: A_tok = mask·(outcome +
// coef·Σ Â_t over the steps t whose scope spans hold the token). mask is
// the loss mask (1 on generated tokens, 0 on prompt and observation
// tokens), so masked tokens get 0 even inside a span.
func Tokens(mask []float32, outcome float64, steps []StepSpans, igAdv []StepValue, coef float64, scope Scope) ([]float32, error) {
	a := make([]float64, len(mask))
	for i := range a {
		a[i] = outcome
	}
	for _, v := range igAdv {
		if v.Step < 0 || v.Step >= len(steps) {
			return nil, fmt.Errorf("advantage: IG for step %d of a sample with %d steps", v.Step, len(steps))
		}
		for _, sp := range steps[v.Step].spans(scope) {
			if sp.Start < 0 || sp.End > len(mask) || sp.Start > sp.End {
				return nil, fmt.Errorf("advantage: step %d span [%d,%d) outside %d tokens", v.Step, sp.Start, sp.End, len(mask))
			}
			for k := sp.Start; k < sp.End; k++ {
				a[k] += coef * v.Value
			}
		}
	}
	out := make([]float32, len(mask))
	for i, m := range mask {
		out[i] = float32(float64(m) * a[i])
	}
	return out, nil
}

// Groups splits records listed in rollout order (question by question, the
// samples of one question consecutive and numbered from 0) into groups, the
// index lists of one rollout question each. A group ends where the question
// id changes or the sample number does not increase, so a question drawn
// twice into one batch (the same id) makes two groups of G, not one of 2G.
// ids[i] and samples[i] are record i's question id and sample number.
func Groups(ids []string, samples []int) ([][]int, error) {
	if len(ids) != len(samples) {
		return nil, fmt.Errorf("advantage: %d ids, %d sample numbers", len(ids), len(samples))
	}
	var groups [][]int
	for i := range ids {
		if i == 0 || ids[i] != ids[i-1] || samples[i] <= samples[i-1] {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], i)
	}
	return groups, nil
}

// Config holds the advantage settings, named as their flags.
type Config struct {
	// AdvNorm is adv_norm (default mean_std).
	AdvNorm AdvNorm
	// IGNorm is ig_norm (default zscore).
	IGNorm IGNorm
	// IGCoef is λ, ig_coef (default 1.0). 0 gives plain GRPO (--algo grpo).
	IGCoef float64
	// IGScope is ig_scope (default query).
	IGScope Scope
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	return Config{AdvNorm: AdvNormMeanStd, IGNorm: IGNorm{Kind: "zscore"}, IGCoef: 1, IGScope: ScopeQuery}
}

// Sample is what Group needs of one trajectory.
type Sample struct {
	// Reward is the outcome reward R.
	Reward float64
	// Mask is the loss mask over the sample's token positions.
	Mask []float32
	// Steps are the token spans of its search steps.
	Steps []StepSpans
	// IG are the IGs of its scored steps (skipped steps are absent).
	IG []StepValue
}

// Group computes the per-token advantages of one group: Outcome over the
// rewards, NormalizeIG over all the group's step IGs, then Tokens for each
// sample. With IGCoef 0 the IG is ignored.
func Group(cfg Config, samples []Sample) ([][]float32, error) {
	rewards := make([]float64, len(samples))
	igs := make([][]float64, len(samples))
	for i, s := range samples {
		rewards[i] = s.Reward
		for _, v := range s.IG {
			igs[i] = append(igs[i], v.Value)
		}
	}
	outcome := Outcome(rewards, cfg.AdvNorm)
	norm := NormalizeIG(igs, cfg.IGNorm)
	out := make([][]float32, len(samples))
	for i, s := range samples {
		var adv []StepValue
		if cfg.IGCoef != 0 {
			for j, v := range s.IG {
				adv = append(adv, StepValue{Step: v.Step, Value: norm[i][j]})
			}
		}
		a, err := Tokens(s.Mask, outcome[i], s.Steps, adv, cfg.IGCoef, cfg.IGScope)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		out[i] = a
	}
	return out, nil
}
