package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/pipeline/train"
)

var trainStage = &stage{
	name:    "train",
	summary: "train a search agent with IG-GRPO (or plain GRPO)",
	usage: `igsearch train --config FILE.toml [flags]

Trains a search-augmented policy. Each iteration runs:
  rollout (group_size samples per question, the search agent with the
  retriever) → outcome rewards (EM) → information gain of every search step
  (ig-grpo) → group advantages + λ·normalised IG on the query tokens →
  reference log-probs (kl_beta > 0) → PPO epochs over mini-batches → a new
  policy for the next rollout.

Inputs:
  --config FILE       TOML with tables [model] [data] [retriever] [rollout]
                      [reward] [ig] [loss] [optim] [train]; every key is also
                      a flag of the same name (flags override the file), e.g.
                      ig.ig_coef is --ig-coef, train.iterations --iterations
                      (retriever.topk is --retrieval-topk, beside the
                      sampler's --top-k; --topk still works, deprecated)
  --model DIR         the initial policy (HF Qwen2 checkpoint + tokenizer.json)
  --train FILE        QA JSONL/Parquet {"id","question","golden_answers"}
  --index DIR         a BM25 index (igsearch index build), or
  --retriever URL     a Search-R1-compatible /retrieve server

Outputs (under --out):
  metrics.jsonl       one line per iteration: reward, em, format_rate,
                      ig_mean/ig_std/ig_pos_ratio, all_fail_groups,
                      all_fail_with_gradient, searches, response_length, loss,
                      kl, clip_fraction, grad_norm, time_* per phase, ig_share,
                      ig_tokens/ig_context (the work behind time_ig),
                      dev_em and dev_by_source (n, em, f1 per
                      data_source) when evaluated
  rollouts/iter-N.jsonl  every trajectory (tokens, masks, old log-probs,
                      spans of each search step, reward, IG per step)
  checkpoint/         HF layout + optimizer.safetensors + trainer_state.json;
                      --resume continues from it exactly

Main flags (see the TOML keys for all):
  --algo grpo|ig-grpo       IG term off or on (default ig-grpo)
  --ig-coef λ               weight of the IG term (default 1)
  --ig-norm zscore|none|clip:C  normalisation of IG over a group's steps
  --ig-scope query|step     tokens that get the IG term (default query)
  --ig-random N             counterfactual draws per step (default 3)
  --ig-counterfactual batch|corpus
  --group-size G --max-turns N --retrieval-topk K --temperature T
  --max-turn-tokens N       tokens generated per turn (Search-R1's
                            max_response_length, 500)
  --max-context-tokens N    prompt + response (Search-R1's max_prompt_length,
                            4096); a trajectory is cut there and ends
  --rollout-micro-batch N   trajectories generated together (bounds the KV
                            caches held at once; 0: all)
  --entropy-coeff C         veRL's entropy bonus (0: none)
  --eval-per-source N       dev questions of each data_source per evaluation
  --lr --kl-beta --clip-eps --iterations --questions --mini-batch
  --eval-every N --checkpoint-every N --resume --seed S --device cpu|cuda[:N]
  --overwrite               start again in an --out that holds an earlier run
                            (without it, or --resume, that run is kept and
                            train refuses; a folder holding anything a run
                            does not write is always refused)
  --threads N --low-memory   intra-op threads; trainer sessions without an
                            arena (less RAM on CPU, about half the speed)
  --report-transfers --strict-placement
                            device checks, as in logprobs (metrics.jsonl
                            has each iteration's transfers either way)
  --lora-rank R --lora-alpha A --lora-targets LIST
                            train PEFT LoRA adapters (rank R, scale A/R,
                            default A = 2R and q,k,v,o) on the frozen base,
                            which is also the KL reference; checkpoints hold
                            the base plus adapter_config.json and
                            adapter_model.safetensors (0: full fine-tuning)
  --recompute               recompute each layer's activations in the
                            backward pass (gradient checkpointing)
  --micro-batch-tokens N    gradient runs sized by tokens (rows × length)

Example:
  igsearch train --config configs/ig-search-qwen2.5-3b.toml --iterations 500
  igsearch train --model out/demo/model-sft --train out/demo/world/train.jsonl \
    --index out/demo/index --out out/run1 --iterations 20 --questions 8
`,
	run: runTrain,
}

// bindTrainFlags registers a flag for every config key, writing into cfg.
func bindTrainFlags(fs *flag.FlagSet, c *train.Config) {
	bindModelFlags(fs, &c.Model.Path, &c.Model.Device, &c.Model.ORTLib, &c.Model.Threads)
	fs.StringVar(&c.Model.Tokenizer, "tokenizer", c.Model.Tokenizer, "tokenizer.json (default MODEL/tokenizer.json)")
	fs.BoolVar(&c.Model.LowMemory, "low-memory", c.Model.LowMemory, "trainer sessions without a memory arena: less RAM, slower")
	fs.StringVar(&c.Data.Train, "train", c.Data.Train, "training questions")
	fs.StringVar(&c.Data.Dev, "dev", c.Data.Dev, "dev questions")
	fs.IntVar(&c.Data.Limit, "limit", c.Data.Limit, "use at most N training questions")
	bindRetrieverFlags(fs, &c.Retriever)
	bindPassageFlags(fs, &c.Retriever.TopK, &c.Rollout.MaxObsTokens)
	bindAgentFlags(fs, &c.Rollout)
	bindSamplingFlags(fs, &c.Rollout.Temperature, &c.Rollout.TopP, &c.Rollout.SampleTopK)
	fs.StringVar(&c.Reward.Metric, "reward", c.Reward.Metric, "em, f1 or subem")
	fs.BoolVar(&c.Reward.FormatReward, "format-reward", c.Reward.FormatReward, "Search-R1's format reward")
	fs.StringVar(&c.IG.Algo, "algo", c.IG.Algo, "grpo or ig-grpo")
	fs.Float64Var(&c.IG.Coef, "ig-coef", c.IG.Coef, "λ")
	fs.StringVar(&c.IG.Norm, "ig-norm", c.IG.Norm, "zscore, none or clip:C")
	fs.StringVar(&c.IG.Scope, "ig-scope", c.IG.Scope, "query or step")
	fs.StringVar(&c.IG.AdvNorm, "adv-norm", c.IG.AdvNorm, "mean or mean_std")
	bindIGScoringFlags(fs, &c.IG)
	fs.Float64Var(&c.Loss.ClipEps, "clip-eps", c.Loss.ClipEps, "ε")
	fs.Float64Var(&c.Loss.ClipEpsHigh, "clip-eps-high", c.Loss.ClipEpsHigh, "upper ε (0: ε)")
	fs.Float64Var(&c.Loss.KLBeta, "kl-beta", c.Loss.KLBeta, "β (0: no KL)")
	fs.Float64Var(&c.Loss.EntropyCoeff, "entropy-coeff", c.Loss.EntropyCoeff, "entropy bonus weight (veRL's entropy_coeff; 0: none)")
	fs.Float64Var(&c.Optim.LR, "lr", c.Optim.LR, "learning rate")
	fs.Float64Var(&c.Optim.MinLRRatio, "min-lr-ratio", c.Optim.MinLRRatio, "cosine floor")
	fs.IntVar(&c.Optim.Warmup, "warmup", c.Optim.Warmup, "warmup steps")
	fs.StringVar(&c.Optim.Schedule, "schedule", c.Optim.Schedule, "cosine or constant")
	fs.Float64Var(&c.Optim.WeightDecay, "weight-decay", c.Optim.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&c.Optim.MaxGradNorm, "max-grad-norm", c.Optim.MaxGradNorm, "global grad-norm clip")
	fs.StringVar(&c.Train.Out, "out", c.Train.Out, "output directory")
	fs.IntVar(&c.Train.Iterations, "iterations", c.Train.Iterations, "iterations")
	fs.IntVar(&c.Train.Questions, "questions", c.Train.Questions, "questions per iteration")
	fs.IntVar(&c.Train.PPOEpochs, "ppo-epochs", c.Train.PPOEpochs, "PPO epochs per iteration")
	fs.IntVar(&c.Train.MiniBatch, "mini-batch", c.Train.MiniBatch, "trajectories per optimiser step")
	fs.IntVar(&c.Train.MicroBatch, "micro-batch", c.Train.MicroBatch, "trajectories per gradient run")
	fs.IntVar(&c.Train.EvalEvery, "eval-every", c.Train.EvalEvery, "iterations between dev evaluations")
	fs.IntVar(&c.Train.EvalLimit, "eval-limit", c.Train.EvalLimit, "dev questions per evaluation")
	fs.IntVar(&c.Train.EvalPerSource, "eval-per-source", c.Train.EvalPerSource, "dev questions of each data_source per evaluation (0: no per-source cap)")
	fs.IntVar(&c.Train.CheckpointEvery, "checkpoint-every", c.Train.CheckpointEvery, "iterations between checkpoints")
	fs.Uint64Var(&c.Train.Seed, "seed", c.Train.Seed, "seed")
	fs.BoolVar(&c.Train.Resume, "resume", c.Train.Resume, "continue from OUT/checkpoint")
	fs.BoolVar(&c.Train.Overwrite, "overwrite", c.Train.Overwrite, "replace the run already in --out")
	fs.BoolVar(&c.Train.FreezeEmbed, "freeze-embeddings", c.Train.FreezeEmbed, "keep the embeddings fixed")
	fs.IntVar(&c.Train.LoRARank, "lora-rank", c.Train.LoRARank, "LoRA rank (0: full fine-tuning)")
	fs.Float64Var(&c.Train.LoRAAlpha, "lora-alpha", c.Train.LoRAAlpha, "LoRA alpha (0: 2×rank)")
	fs.StringVar(&c.Train.LoRATargets, "lora-targets", c.Train.LoRATargets, "comma-separated projections LoRA adapts (default q_proj,k_proj,v_proj,o_proj)")
	fs.BoolVar(&c.Train.Recompute, "recompute", c.Train.Recompute, "recompute layer activations in the backward pass")
	fs.IntVar(&c.Train.MicroBatchTokens, "micro-batch-tokens", c.Train.MicroBatchTokens, "tokens per gradient run (0: by --micro-batch)")
}

func runTrain(args []string) error {
	cfg := train.DefaultConfig()
	fs := newFlags("train")
	configPath := fs.String("config", "", "TOML config")
	bindTrainFlags(fs, &cfg)
	var check checkFlags // not config keys: they check a run, not shape it
	bindCheckFlags(fs, &check)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	if *configPath != "" {
		// The file goes under the flags: remember what was set on the
		// command line, load the file, then apply those flags again.
		set := map[string]string{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
		if err := train.LoadConfig(*configPath, &cfg); err != nil {
			return err
		}
		for name, v := range set {
			if name == "config" {
				continue
			}
			if err := fs.Set(name, v); err != nil {
				return usagef("--%s: %v", name, err)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	check.begin()
	defer check.report()
	prog := newProgress("train", "iterations", 0)
	start := time.Now()
	sum, err := train.Run(ctx, cfg, func(iter, total int, phase string) {
		if prog.tty {
			prog.mu.Lock()
			fmt.Fprintf(os.Stderr, "\r\033[Ktrain: iteration %d/%d %s (%.0fs)", iter+1, total, phase, time.Since(start).Seconds())
			prog.mu.Unlock()
		}
	})
	prog.finish()
	if err != nil {
		return err
	}
	js, _ := json.Marshal(sum.Last)
	fmt.Fprintf(os.Stderr, "trained %d iterations in %.0fs; checkpoint %s\n", sum.Iterations, time.Since(start).Seconds(), sum.Checkpoint)
	fmt.Println(string(js))
	return nil
}
