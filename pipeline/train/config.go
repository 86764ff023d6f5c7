// Package train is the IG-Search training loop: rollout → rewards → IG →
// advantages → reference log-probs → PPO epochs through the trainer's
// artifacts → a new policy for the next rollout, with evaluation,
// checkpoints, resume and a metrics log.
package train

import (
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
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
	URL   string `toml:"url"`   // http://host:port/retrieve, instead of Index
	TopK  int    `toml:"topk"`
}

// RolloutConfig shapes the search agent.
type RolloutConfig struct {
	Protocol     string  `toml:"protocol"` // search-r1 | autorefine
	Chat         bool    `toml:"chat"`     // Qwen2.5 chat format (false: plain prompt)
	GroupSize    int     `toml:"group_size"`
	MaxTurns     int     `toml:"max_turns"`
	MaxObsTokens int     `toml:"max_obs_tokens"`
	MaxNewTokens int     `toml:"max_new_tokens"` // per turn
	MaxResponse  int     `toml:"max_response_tokens"`
	Temperature  float64 `toml:"temperature"`
	TopP         float64 `toml:"top_p"`
	TopK         int     `toml:"top_k"`
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
	Out             string `toml:"out"`
	Iterations      int    `toml:"iterations"`
	Questions       int    `toml:"questions"`        // questions per iteration (× group_size trajectories)
	PPOEpochs       int    `toml:"ppo_epochs"`       // passes over each iteration's trajectories
	MiniBatch       int    `toml:"mini_batch"`       // trajectories per optimiser step (0: all)
	MicroBatch      int    `toml:"micro_batch"`      // trajectories per gradient run (0: mini_batch)
	EvalEvery       int    `toml:"eval_every"`       // iterations between dev evaluations (0: never)
	EvalLimit       int    `toml:"eval_limit"`       // dev questions per evaluation (0: all)
	CheckpointEvery int    `toml:"checkpoint_every"` // iterations between checkpoints (0: only at the end)
	Seed            uint64 `toml:"seed"`
	Resume          bool   `toml:"resume"`
	FreezeEmbed     bool   `toml:"freeze_embeddings"`
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

// Validate checks ranges and names.
func (c *Config) Validate() error {
	switch {
	case c.Model.Path == "":
		return fmt.Errorf("model.path (--model) is required")
	case c.Data.Train == "":
		return fmt.Errorf("data.train (--train) is required")
	case c.Retriever.Index == "" && c.Retriever.URL == "":
		return fmt.Errorf("retriever.index (--index) or retriever.url (--retriever) is required")
	case c.Rollout.GroupSize < 1:
		return fmt.Errorf("rollout.group_size must be ≥ 1, is %d", c.Rollout.GroupSize)
	case c.Train.Iterations < 1:
		return fmt.Errorf("train.iterations must be ≥ 1, is %d", c.Train.Iterations)
	case c.Train.Questions < 1:
		return fmt.Errorf("train.questions must be ≥ 1, is %d", c.Train.Questions)
	case c.Train.PPOEpochs < 1:
		return fmt.Errorf("train.ppo_epochs must be ≥ 1, is %d", c.Train.PPOEpochs)
	case c.Optim.LR <= 0:
		return fmt.Errorf("optim.lr must be positive, is %g", c.Optim.LR)
	case c.Optim.Schedule != "cosine" && c.Optim.Schedule != "constant":
		return fmt.Errorf("optim.schedule %q: want cosine or constant", c.Optim.Schedule)
	case c.IG.Algo != "grpo" && c.IG.Algo != "ig-grpo":
		return fmt.Errorf("ig.algo %q: want grpo or ig-grpo", c.IG.Algo)
	case c.IG.Workers < 0:
		return fmt.Errorf("ig.ig_workers must be ≥ 0 (0: automatic), is %d", c.IG.Workers)
	}
	return nil
}
