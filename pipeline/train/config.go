// Package train is the IG-Search training loop: rollout → rewards → IG →
// advantages → reference log-probs → PPO epochs through the trainer's
// artifacts → a new policy for the next rollout, with evaluation,
// checkpoints, resume and a metrics log.
package train

import (
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

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
	SampleTopK  int     `toml:"top_k"`
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
