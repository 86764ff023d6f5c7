// Package train is the IG-Search training loop: rollout → rewards → IG →
// advantages → reference log-probs → PPO epochs through the trainer's
// artifacts → a new policy for the next rollout, with evaluation,
// checkpoints, resume and a metrics log.
package train

import (
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/trainer"
)

// Config is everything `igsearch train` needs. Its TOML form has one table
// per group; every key is also a flag of the same name (flags override the
// file).
type Config struct {
	Model     ModelConfig     `toml:"model"`
	Data      DataConfig      `toml:"data"`
	Retriever RetrieverConfig `toml:"retriever"`
	Rollout   RolloutConfig   `toml:"rollout"`
	Reward    RewardConfig    `toml:"reward"`
	IG        IGConfig        `toml:"ig"`
	Loss      LossConfig      `toml:"loss"`
	Optim     OptimConfig     `toml:"optim"`
	Train     LoopConfig      `toml:"train"`
}

// ModelConfig names the policy and where it runs.
type ModelConfig struct {
	Path      string `toml:"path"`      // HF checkpoint directory (the initial policy)
	Tokenizer string `toml:"tokenizer"` // default: Path/tokenizer.json
	Device    string `toml:"device"`    // cpu | cuda[:N]
	Threads   int    `toml:"threads"`   // intra-op threads, 0 = ONNX Runtime's default
	ORTLib    string `toml:"ort_lib"`
	// LowMemory runs the trainer's sessions without a memory arena: lower
	// peak RAM on CPU with a large vocabulary, at about half the speed.
	LowMemory bool `toml:"low_memory"`
}

// DataConfig names the QA data.
type DataConfig struct {
	Train string `toml:"train"` // JSONL or Parquet
	Dev   string `toml:"dev"`
	Limit int    `toml:"limit"` // use at most this many training questions (0: all)
}

// RetrieverConfig chooses the in-process index or a Search-R1 server.
type RetrieverConfig struct {
	Index string `toml:"index"` // index directory
	URL   string `toml:"url"`   // http://host:port[/retrieve]: searches go here; Index then serves only ig_counterfactual corpus
	TopK  int    `toml:"topk"`
}

// RolloutConfig shapes the search agent.
type RolloutConfig struct {
	Protocol     string `toml:"protocol"` // search-r1 | autorefine
	Chat         bool   `toml:"chat"`     // Qwen2.5 chat format (false: plain prompt)
	GroupSize    int    `toml:"group_size"`
	MaxTurns     int    `toml:"max_turns"`
	MaxObsTokens int    `toml:"max_obs_tokens"`
	// MaxNewTokens caps each turn's generation (Search-R1's
	// max_response_length); MaxContext the prompt and response together
	// (Search-R1's max_prompt_length, 0: no limit); MaxResponse the
	// response alone. See pipeline/rollout.
	MaxNewTokens int `toml:"max_turn_tokens"`
	MaxContext   int `toml:"max_context_tokens"`
	MaxResponse  int `toml:"max_response_tokens"`
	// MicroBatch is the trajectories generated together (0: all of an
	// iteration's); it bounds the KV caches held at once.
	MicroBatch  int     `toml:"rollout_micro_batch"`
	Temperature float64 `toml:"temperature"`
	TopP        float64 `toml:"top_p"`
	TopK        int     `toml:"top_k"`
}

// RewardConfig chooses the outcome reward.
type RewardConfig struct {
	Metric       string `toml:"metric"`        // em | f1 | subem
	FormatReward bool   `toml:"format_reward"` // Search-R1's format reward
}

// IGConfig is the IG-Search part.
type IGConfig struct {
	Algo           string  `toml:"algo"`    // grpo | ig-grpo
	Coef           float64 `toml:"ig_coef"` // λ
	Norm           string  `toml:"ig_norm"` // zscore | none | clip:C
	Scope          string  `toml:"ig_scope"`
	Random         int     `toml:"ig_random"`
	Gold           string  `toml:"ig_gold"`
	Counterfactual string  `toml:"ig_counterfactual"`
	MaxContext     int     `toml:"ig_max_context"`
	AdvNorm        string  `toml:"adv_norm"`
	PrefixSharing  bool    `toml:"ig_prefix_sharing"`
	// Workers is how many parts of the batch IG scores at once (0: 2 on
	// the CPU, 1 on CUDA); see igscore.Options.Workers.
	Workers int `toml:"ig_workers"`
}

// LossConfig is the PPO surrogate.
type LossConfig struct {
	ClipEps     float64 `toml:"clip_eps"`
	ClipEpsHigh float64 `toml:"clip_eps_high"`
	KLBeta      float64 `toml:"kl_beta"`
	// EntropyCoeff weights veRL's entropy bonus (0: none).
	EntropyCoeff float64 `toml:"entropy_coeff"`
}

// OptimConfig is AdamW with a warmup + cosine schedule.
type OptimConfig struct {
	LR          float64 `toml:"lr"`
	MinLRRatio  float64 `toml:"min_lr_ratio"` // cosine floor as a fraction of lr
	Warmup      int     `toml:"warmup"`       // optimiser steps of linear warmup
	Schedule    string  `toml:"schedule"`     // cosine | constant
	WeightDecay float64 `toml:"weight_decay"`
	MaxGradNorm float64 `toml:"max_grad_norm"`
	Beta1       float64 `toml:"beta1"`
	Beta2       float64 `toml:"beta2"`
	Eps         float64 `toml:"eps"`
}

// LoopConfig is the outer loop.
type LoopConfig struct {
	Out        string `toml:"out"`
	Iterations int    `toml:"iterations"`
	Questions  int    `toml:"questions"`   // questions per iteration (× group_size trajectories)
	PPOEpochs  int    `toml:"ppo_epochs"`  // passes over each iteration's trajectories
	MiniBatch  int    `toml:"mini_batch"`  // trajectories per optimiser step (0: all)
	MicroBatch int    `toml:"micro_batch"` // trajectories per gradient run (0: mini_batch)
	EvalEvery  int    `toml:"eval_every"`  // iterations between dev evaluations (0: never)
	EvalLimit  int    `toml:"eval_limit"`  // dev questions per evaluation (0: all)
	// EvalPerSource takes at most this many dev questions of each
	// data_source, the first in file order (0: no per-source cap), so that a
	// merged test file of seven sets is sampled from each, not just its
	// first (NQ) rows. EvalLimit then caps the total.
	EvalPerSource   int    `toml:"eval_per_source"`
	CheckpointEvery int    `toml:"checkpoint_every"` // iterations between checkpoints (0: only at the end)
	Seed            uint64 `toml:"seed"`
	Resume          bool   `toml:"resume"`
	// Overwrite lets a new run replace the run already in Out (its
	// metrics, rollouts and checkpoint); without it, and without Resume, an
	// existing run is refused. A directory holding anything a run does not
	// write is refused either way.
	Overwrite   bool `toml:"overwrite"`
	FreezeEmbed bool `toml:"freeze_embeddings"`
	// LoRARank > 0 trains PEFT LoRA adapters of that rank instead of the
	// model (the base stays frozen and is the KL reference); LoRAAlpha
	// (0: 2·rank) and LoRATargets (comma-separated; empty: q, k, v, o
	// projections) as in PEFT.
	LoRARank    int     `toml:"lora_rank"`
	LoRAAlpha   float64 `toml:"lora_alpha"`
	LoRATargets string  `toml:"lora_targets"`
	// Recompute recomputes each decoder layer's activations in the
	// backward pass (gradient checkpointing).
	Recompute bool `toml:"recompute"`
	// MicroBatchTokens sizes gradient runs by tokens (rows × unpadded
	// length) instead of MicroBatch rows; 0: by rows.
	MicroBatchTokens int `toml:"micro_batch_tokens"`
}

// DefaultConfig is Search-R1's GRPO setting scaled to the defaults of the
// issue: group 5, 4 turns, top-3, temperature 1, lr 1e-6, KL 0.001.
func DefaultConfig() Config {
	return Config{
		Model:     ModelConfig{Device: "cpu"},
		Retriever: RetrieverConfig{TopK: 3},
		Rollout: RolloutConfig{Protocol: "search-r1", Chat: true, GroupSize: 5, MaxTurns: 4, MaxObsTokens: 512,
			MaxNewTokens: 500, MaxResponse: 4096, Temperature: 1, TopP: 1},
		Reward: RewardConfig{Metric: "em"},
		IG: IGConfig{Algo: "ig-grpo", Coef: 1, Norm: "zscore", Scope: "query", Random: 3, Gold: "first",
			Counterfactual: "batch", MaxContext: 4096, AdvNorm: "mean_std", PrefixSharing: true},
		Loss:  LossConfig{ClipEps: 0.2, KLBeta: 0.001},
		Optim: OptimConfig{LR: 1e-6, MinLRRatio: 0, Warmup: 0, Schedule: "constant", WeightDecay: 0.01, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Train: LoopConfig{Out: "out/train", Iterations: 100, Questions: 32, PPOEpochs: 1, EvalEvery: 10, CheckpointEvery: 10, Seed: 1},
	}
}

// LoadConfig reads a TOML file over the defaults; unknown keys are an error
// (a typo must not silently fall back to a default).
func LoadConfig(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		return fmt.Errorf("config %s: unknown keys %v", path, undec)
	}
	return nil
}

// Validate checks every setting before anything is written, and returns one
// error listing every bad value (nil when all are good), so that a typo
// fails at once rather than at iteration 0 after --out was created.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if c.Model.Path == "" {
		bad("model.path (--model) is required")
	}
	if _, err := ort.ParseDevice(c.Model.Device); err != nil {
		bad("model.device: %v", err)
	}
	if c.Model.Threads < 0 {
		bad("model.threads must be ≥ 0 (0: ONNX Runtime's choice), is %d", c.Model.Threads)
	}
	if c.Data.Train == "" {
		bad("data.train (--train) is required")
	}
	if c.Data.Limit < 0 {
		bad("data.limit must be ≥ 0 (0: all), is %d", c.Data.Limit)
	}
	if c.Retriever.Index == "" && c.Retriever.URL == "" {
		bad("retriever.index (--index) or retriever.url (--retriever) is required")
	}
	if c.Retriever.TopK < 1 {
		bad("retriever.topk must be ≥ 1, is %d", c.Retriever.TopK)
	}
	if _, err := protocol.Lookup(c.Rollout.Protocol); err != nil {
		bad("rollout.protocol: %v", err)
	}
	if c.Rollout.GroupSize < 1 {
		bad("rollout.group_size must be ≥ 1, is %d", c.Rollout.GroupSize)
	}
	if c.Rollout.MaxTurns < 0 {
		bad("rollout.max_turns must be ≥ 0, is %d", c.Rollout.MaxTurns)
	}
	if c.Rollout.MaxObsTokens < 0 {
		bad("rollout.max_obs_tokens must be ≥ 0 (0: no limit), is %d", c.Rollout.MaxObsTokens)
	}
	if c.Rollout.MaxNewTokens < 1 {
		bad("rollout.max_turn_tokens must be ≥ 1, is %d", c.Rollout.MaxNewTokens)
	}
	if c.Rollout.MaxContext < 0 {
		bad("rollout.max_context_tokens must be ≥ 0 (0: no limit), is %d", c.Rollout.MaxContext)
	}
	if c.Rollout.MicroBatch < 0 {
		bad("rollout.rollout_micro_batch must be ≥ 0 (0: all), is %d", c.Rollout.MicroBatch)
	}
	if !finite(c.Loss.EntropyCoeff) || c.Loss.EntropyCoeff < 0 {
		bad("loss.entropy_coeff must be ≥ 0, is %g", c.Loss.EntropyCoeff)
	}
	if c.Rollout.MaxResponse < 1 {
		bad("rollout.max_response_tokens must be ≥ 1, is %d", c.Rollout.MaxResponse)
	}
	if !finite(c.Rollout.Temperature) || c.Rollout.Temperature < 0 {
		bad("rollout.temperature must be ≥ 0 (0: greedy), is %g", c.Rollout.Temperature)
	}
	if !finite(c.Rollout.TopP) || c.Rollout.TopP < 0 || c.Rollout.TopP > 1 {
		bad("rollout.top_p must be in [0, 1] (0 or 1: off), is %g", c.Rollout.TopP)
	}
	if c.Rollout.TopK < 0 {
		bad("rollout.top_k must be ≥ 0 (0: off), is %d", c.Rollout.TopK)
	}
	if _, err := reward.ParseMetric(c.Reward.Metric); err != nil {
		bad("reward.metric: %v", err)
	}
	if c.IG.Algo != "grpo" && c.IG.Algo != "ig-grpo" {
		bad("ig.algo %q: want grpo or ig-grpo", c.IG.Algo)
	}
	if !finite(c.IG.Coef) {
		bad("ig.ig_coef must be finite, is %g", c.IG.Coef)
	}
	if _, err := advantage.ParseIGNorm(c.IG.Norm); err != nil {
		bad("ig.ig_norm: %v", err)
	}
	if _, err := advantage.ParseScope(c.IG.Scope); err != nil {
		bad("ig.ig_scope: %v", err)
	}
	if _, err := advantage.ParseAdvNorm(c.IG.AdvNorm); err != nil {
		bad("ig.adv_norm: %v", err)
	}
	if _, err := ig.ParseGold(c.IG.Gold); err != nil {
		bad("ig.ig_gold: %v", err)
	}
	if _, err := ig.ParseCounterfactual(c.IG.Counterfactual); err != nil {
		bad("ig.ig_counterfactual: %v", err)
	}
	if c.IG.Algo == "ig-grpo" && c.IG.Random < 1 {
		bad("ig.ig_random must be ≥ 1, is %d", c.IG.Random)
	}
	if c.IG.MaxContext < 0 {
		bad("ig.ig_max_context must be ≥ 0, is %d", c.IG.MaxContext)
	}
	if c.IG.Workers < 0 {
		bad("ig.ig_workers must be ≥ 0 (0: automatic), is %d", c.IG.Workers)
	}
	if !finite(c.Optim.LR) || c.Optim.LR <= 0 {
		bad("optim.lr must be positive, is %g", c.Optim.LR)
	}
	if !finite(c.Optim.MinLRRatio) || c.Optim.MinLRRatio < 0 || c.Optim.MinLRRatio > 1 {
		bad("optim.min_lr_ratio must be in [0, 1], is %g", c.Optim.MinLRRatio)
	}
	if c.Optim.Warmup < 0 {
		bad("optim.warmup must be ≥ 0, is %d", c.Optim.Warmup)
	}
	if c.Optim.Schedule != "cosine" && c.Optim.Schedule != "constant" {
		bad("optim.schedule %q: want cosine or constant", c.Optim.Schedule)
	}
	if _, err := c.trainerLoRA(); err != nil {
		bad("train.lora_*: %v", err)
	}
	if c.Train.MicroBatchTokens < 0 {
		bad("train.micro_batch_tokens must be ≥ 0 (0: by micro_batch), is %d", c.Train.MicroBatchTokens)
	}
	// The trainer's own check covers the loss and AdamW values (NaN, ranges).
	if err := trainer.ValidateSettings(c.trainerLoss(), c.trainerOptim()); err != nil {
		for _, e := range unjoin(err) {
			if !(c.Optim.LR <= 0 && strings.HasPrefix(e.Error(), "lr ")) { // reported above
				bad("%v", e)
			}
		}
	}
	if c.Train.Out == "" {
		bad("train.out (--out) is required")
	}
	if c.Train.Iterations < 1 {
		bad("train.iterations must be ≥ 1, is %d", c.Train.Iterations)
	}
	if c.Train.Questions < 1 {
		bad("train.questions must be ≥ 1, is %d", c.Train.Questions)
	}
	if c.Train.PPOEpochs < 1 {
		bad("train.ppo_epochs must be ≥ 1, is %d", c.Train.PPOEpochs)
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"mini_batch", c.Train.MiniBatch}, {"micro_batch", c.Train.MicroBatch}, {"eval_every", c.Train.EvalEvery},
		{"eval_limit", c.Train.EvalLimit}, {"eval_per_source", c.Train.EvalPerSource}, {"checkpoint_every", c.Train.CheckpointEvery}} {
		if v.n < 0 {
			bad("train.%s must be ≥ 0, is %d", v.key, v.n)
		}
	}
	if c.Train.Resume && c.Train.Overwrite {
		bad("train.resume and train.overwrite exclude each other: continue the run in --out, or start it again")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("bad settings:\n  %w", joinLines(errs))
}

// trainerLoss is the loss the trainer runs for c.
func (c *Config) trainerLoss() trainer.LossConfig {
	return trainer.LossConfig{Kind: trainer.LossGRPO, ClipEps: c.Loss.ClipEps, ClipEpsHigh: c.Loss.ClipEpsHigh, KLBeta: c.Loss.KLBeta,
		EntropyCoeff: c.Loss.EntropyCoeff}
}

// trainerOptim is the AdamW setting the trainer runs for c (the schedule
// sets the learning rate of each step).
func (c *Config) trainerOptim() trainer.AdamWConfig {
	return trainer.AdamWConfig{LR: c.Optim.LR, Beta1: c.Optim.Beta1, Beta2: c.Optim.Beta2, Eps: c.Optim.Eps,
		WeightDecay: c.Optim.WeightDecay, MaxGradNorm: c.Optim.MaxGradNorm}
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// lineList is errors shown one per line, indented under a heading.
type lineList []error

func (l lineList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n  ")
}

func (l lineList) Unwrap() []error { return l }

func joinLines(errs []error) error { return lineList(errs) }

// trainerLoRA is the trainer's LoRA configuration, nil for full
// fine-tuning.
func (c *Config) trainerLoRA() (*trainer.LoRAConfig, error) {
	var targets []string
	for _, t := range strings.Split(c.Train.LoRATargets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			targets = append(targets, t)
		}
	}
	return trainer.LoRAFromFlags(c.Train.LoRARank, c.Train.LoRAAlpha, targets, c.Model.Path)
}
