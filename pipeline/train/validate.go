package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/trainer"
)

// Validate checks every setting before anything is written, and returns one
// error listing every bad value (nil when all are good), so that a typo
// fails at once rather than at iteration 0 after --out was created.
func (c *Config) Validate() error {
	var p problems
	c.validateInputs(&p)
	c.validateRollout(&p)
	c.validateIG(&p)
	c.validateOptim(&p)
	c.validateLoop(&p)
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("bad settings:\n  %w", p)
}

// validateInputs checks the model, data and retriever.
func (c *Config) validateInputs(p *problems) {
	p.check(c.Model.Path != "", "model.path (--model) is required")
	parses(p, "model.device", ort.ParseDevice, c.Model.Device)
	p.check(c.Model.Threads >= 0, "model.threads must be ≥ 0 (0: ONNX Runtime's choice), is %d", c.Model.Threads)
	p.check(c.Data.Train != "", "data.train (--train) is required")
	p.check(c.Data.Limit >= 0, "data.limit must be ≥ 0 (0: all), is %d", c.Data.Limit)
	p.check(c.Retriever.Index != "" || c.Retriever.URL != "", "retriever.index (--index) or retriever.url (--retriever) is required")
	p.check(c.Retriever.TopK >= 1, "retriever.topk must be ≥ 1, is %d", c.Retriever.TopK)
}

// validateRollout checks the search agent's and the sampler's settings.
func (c *Config) validateRollout(p *problems) {
	r := c.Rollout
	parses(p, "rollout.protocol", protocol.Lookup, r.Protocol)
	p.check(r.GroupSize >= 1, "rollout.group_size must be ≥ 1, is %d", r.GroupSize)
	p.check(r.MaxTurns >= 0, "rollout.max_turns must be ≥ 0, is %d", r.MaxTurns)
	p.check(r.MaxObsTokens >= 0, "rollout.max_obs_tokens must be ≥ 0 (0: no limit), is %d", r.MaxObsTokens)
	p.check(r.MaxNewTokens >= 1, "rollout.max_turn_tokens must be ≥ 1, is %d", r.MaxNewTokens)
	p.check(r.MaxContext >= 0, "rollout.max_context_tokens must be ≥ 0 (0: no limit), is %d", r.MaxContext)
	p.check(r.MaxResponse >= 1, "rollout.max_response_tokens must be ≥ 1, is %d", r.MaxResponse)
	p.check(r.MicroBatch >= 0, "rollout.rollout_micro_batch must be ≥ 0 (0: all), is %d", r.MicroBatch)
	p.check(finite(r.Temperature) && r.Temperature >= 0, "rollout.temperature must be ≥ 0 (0: greedy), is %g", r.Temperature)
	p.check(finite(r.TopP) && r.TopP >= 0 && r.TopP <= 1, "rollout.top_p must be in [0, 1] (0 or 1: off), is %g", r.TopP)
	p.check(r.SampleTopK >= 0, "rollout.top_k must be ≥ 0 (0: off), is %d", r.SampleTopK)
	parses(p, "reward.metric", reward.ParseMetric, c.Reward.Metric)
}

// validateIG checks the IG term and the advantages.
func (c *Config) validateIG(p *problems) {
	g := c.IG
	p.check(g.Algo == "grpo" || g.Algo == "ig-grpo", "ig.algo %q: want grpo or ig-grpo", g.Algo)
	p.check(finite(g.Coef), "ig.ig_coef must be finite, is %g", g.Coef)
	parses(p, "ig.ig_norm", advantage.ParseIGNorm, g.Norm)
	parses(p, "ig.ig_scope", advantage.ParseScope, g.Scope)
	parses(p, "ig.adv_norm", advantage.ParseAdvNorm, g.AdvNorm)
	parses(p, "ig.ig_gold", ig.ParseGold, g.Gold)
	parses(p, "ig.ig_counterfactual", ig.ParseCounterfactual, g.Counterfactual)
	p.check(g.Algo != "ig-grpo" || g.Random >= 1, "ig.ig_random must be ≥ 1, is %d", g.Random)
	p.check(g.MaxContext >= 0, "ig.ig_max_context must be ≥ 0, is %d", g.MaxContext)
	p.check(g.Workers >= 0, "ig.ig_workers must be ≥ 0 (0: automatic), is %d", g.Workers)
}

// validateOptim checks the loss, AdamW and the schedule; the trainer's own
// check covers the loss and AdamW values (NaN, ranges).
func (c *Config) validateOptim(p *problems) {
	o := c.Optim
	p.check(finite(o.LR) && o.LR > 0, "optim.lr must be positive, is %g", o.LR)
	p.check(finite(o.MinLRRatio) && o.MinLRRatio >= 0 && o.MinLRRatio <= 1, "optim.min_lr_ratio must be in [0, 1], is %g", o.MinLRRatio)
	p.check(o.Warmup >= 0, "optim.warmup must be ≥ 0, is %d", o.Warmup)
	p.check(o.Schedule == "cosine" || o.Schedule == "constant", "optim.schedule %q: want cosine or constant", o.Schedule)
	if err := trainer.ValidateSettings(c.trainerLoss(), c.trainerOptim()); err != nil {
		for _, e := range unjoin(err) {
			if lrOK := finite(o.LR) && o.LR > 0; lrOK || !strings.HasPrefix(e.Error(), "lr ") { // a bad lr is reported above
				*p = append(*p, e)
			}
		}
	}
	if _, err := c.trainerLoRA(); err != nil {
		p.add("train.lora_*: %v", err)
	}
}

// validateLoop checks the outer loop.
func (c *Config) validateLoop(p *problems) {
	t := c.Train
	p.check(t.Out != "", "train.out (--out) is required")
	p.check(t.Iterations >= 1, "train.iterations must be ≥ 1, is %d", t.Iterations)
	p.check(t.Questions >= 1, "train.questions must be ≥ 1, is %d", t.Questions)
	p.check(t.PPOEpochs >= 1, "train.ppo_epochs must be ≥ 1, is %d", t.PPOEpochs)
	for _, v := range []struct {
		key string
		n   int
	}{{"mini_batch", t.MiniBatch}, {"micro_batch", t.MicroBatch}, {"micro_batch_tokens", t.MicroBatchTokens},
		{"eval_every", t.EvalEvery}, {"eval_limit", t.EvalLimit}, {"eval_per_source", t.EvalPerSource},
		{"checkpoint_every", t.CheckpointEvery}} {
		p.check(v.n >= 0, "train.%s must be ≥ 0, is %d", v.key, v.n)
	}
	p.check(!(t.Resume && t.Overwrite), "train.resume and train.overwrite exclude each other: continue the run in --out, or start it again")
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// problems are the bad settings found, shown one per line under a heading.
type problems []error

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Errorf(format, a...)) }

// check adds the problem unless ok.
func (p *problems) check(ok bool, format string, a ...any) {
	if !ok {
		p.add(format, a...)
	}
}

// parses adds key's parse error, if any.
func parses[T any](p *problems, key string, parse func(string) (T, error), s string) {
	if _, err := parse(s); err != nil {
		p.add("%s: %v", key, err)
	}
}

func (p problems) Error() string {
	parts := make([]string, len(p))
	for i, e := range p {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n  ")
}

func (p problems) Unwrap() []error { return p }

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
