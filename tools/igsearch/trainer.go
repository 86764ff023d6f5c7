package main

import (
	"encoding/json"
	"fmt"
	"os"

	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/trainer"
)

var trainerStage = &stage{
	name:    "trainer",
	summary: "run one optimiser step (GRPO or SFT) on a batch file",
	usage: `igsearch trainer step --model HFDIR --batch FILE.json --out DIR [flags]

Runs exactly one optimiser step on the batch in FILE with the project's
training artifacts (a gradient graph differentiated by igsearch, and a
grad-norm clipping + AdamW graph, both standard ONNX run by ONNX Runtime),
and writes the updated checkpoint to DIR.

Inputs:
  --model HFDIR        a Hugging Face Qwen2 checkpoint (config.json +
                       model.safetensors, F32/BF16/F16)
  --batch FILE         JSON with the micro-batch and hyper-parameters, in the
                       layout of grpo_step.json:
                         input_ids, attention_mask      [B][T] (left padded)
                         loss_mask, advantages,
                         old_logprobs, ref_logprobs     [B][T-1], column t
                                                        scores input_ids[t+1]
                         loss_type ("grpo" default, or "sft"), clip_eps,
                         clip_eps_high, kl_beta, lr, weight_decay,
                         adam_betas, adam_eps, max_grad_norm
Output:
  --out DIR            the updated checkpoint in HF layout (F32 weights),
                       with optimizer.safetensors and trainer_state.json;
                       written under a temporary name and renamed into place
  stdout               one JSON line: {"loss", "grad_norm", "clip_fraction",
                       "approx_kl", ...}; grad_norm is before clipping

Flags:
  --micro-batch N      sequences per gradient run; gradients are summed, so
                       the result equals the full batch within fp32 noise
                       (default 0: the whole batch at once)
  --micro-batch-tokens N  size gradient runs by tokens instead: rows × their
                       unpadded length ≤ N (a longer row runs alone)
  --recompute          recompute each decoder layer's activations in the
                       backward pass (gradient checkpointing): less memory,
                       about one more forward pass of time, same result
  --freeze-embeddings  keep the embedding (and a tied lm_head) fixed
  --lora-rank R        train LoRA adapters of rank R instead of the model
                       (0: full fine-tuning); DIR then holds the unchanged
                       base model plus PEFT's adapter_config.json and
                       adapter_model.safetensors
  --lora-alpha A       LoRA scale numerator: updates are (A/R)·B·A (default 2R)
  --lora-targets LIST  comma-separated projections to adapt (default
                       q_proj,k_proj,v_proj,o_proj; also gate_proj, up_proj,
                       down_proj)
  --force              replace a checkpoint that --out already holds (a
                       directory holding anything else, such as the --model
                       folder with its tokenizer, is always refused)
  --device D           cpu, cuda or cuda:N (default cpu)
  --threads N          intra-op threads (default: ONNX Runtime's choice)
  --ort-lib PATH       the ONNX Runtime shared library (default: found by set-up)
  --report-transfers --strict-placement
                       device checks, as in logprobs

The loss (GRPO, as in the reference fixture):
  r = exp(logp − old_logprobs)
  loss = Σ mask·(−min(r·A, clip(r, 1−ε, 1+ε_high)·A) + β·(exp(ref−logp) − (ref−logp) − 1)) / Σ mask

Example:
  igsearch trainer step --model testdata/models/tiny-qwen2 \
    --batch testdata/models/tiny-qwen2/grpo-step/grpo_step.json --out out/step1
`,
	run: runTrainer,
}

func runTrainer(args []string) error {
	_, rest, err := subVerb(args, "step")
	if err != nil {
		return err
	}
	fs := newFlags("trainer step")
	var pf policyFlags
	pf.register(fs)
	batchPath := fs.String("batch", "", "batch JSON file")
	out := fs.String("out", "", "output checkpoint directory")
	micro := fs.Int("micro-batch", 0, "sequences per gradient run (0: all)")
	microTokens := fs.Int("micro-batch-tokens", 0, "tokens per gradient run (0: by --micro-batch)")
	recompute := fs.Bool("recompute", false, "recompute layer activations in the backward pass")
	freeze := fs.Bool("freeze-embeddings", false, "keep the embeddings fixed")
	var lf loraFlags
	lf.register(fs)
	force := fs.Bool("force", false, "replace an existing checkpoint at --out")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	var bad usageProblems
	bad.check(pf.model != "", "--model is required")
	bad.check(*batchPath != "", "--batch is required")
	bad.check(*out != "", "--out is required")
	bad.check(*micro >= 0, "--micro-batch must not be negative, is %d", *micro)
	bad.check(*microTokens >= 0, "--micro-batch-tokens must not be negative, is %d", *microTokens)
	bad.check(fs.NArg() == 0, "unexpected arguments %v", fs.Args())
	dev, err := ort.ParseDevice(pf.device)
	bad.checkErr(err)
	if err := bad.err(); err != nil {
		return err
	}
	// Everything is checked before the step runs, so a refusal costs nothing.
	if err := atomicfile.Guard(*out, trainer.CheckpointKind, *force, "--force"); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	file, err := trainer.ReadStepFile(*batchPath)
	if err != nil {
		return err
	}
	lossCfg, optCfg := file.Configs()
	if err := trainer.ValidateSettings(lossCfg, optCfg); err != nil {
		return fmt.Errorf("batch %s: %w", *batchPath, err)
	}
	lora, err := trainer.LoRAFromFlags(lf.rank, lf.alpha, lf.targets, pf.model)
	if err != nil {
		return usagef("%v", err)
	}
	mc, err := qwen2.LoadConfig(pf.model)
	if err != nil {
		return err
	}
	if err := trainer.CheckMemory(mc, trainer.Options{Artifact: trainer.ArtifactOptions{LoRA: lora}}); err != nil {
		return fmt.Errorf("%s: %w", pf.model, err)
	}
	if _, err := ort.InitDefault(pf.ortLib, dev); err != nil {
		return err
	}
	pf.check.begin()
	defer pf.check.report()
	tr, err := trainer.Open(pf.model, trainer.Options{
		Artifact:         trainer.ArtifactOptions{Loss: lossCfg, FreezeEmbeddings: *freeze, LoRA: lora, Recompute: *recompute},
		Optim:            optCfg,
		MicroBatch:       *micro,
		MicroBatchTokens: *microTokens,
		Session:          ort.Options{Device: dev, IntraOpThreads: pf.threads},
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	m, err := tr.Step(file.Batch())
	if err != nil {
		return fmt.Errorf("%s: %w", *batchPath, err)
	}
	if err := tr.Save(*out, nil); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(m)
}

// loraFlags are the LoRA flags of `trainer step`; `train` has the same
// names (config keys lora_rank, lora_alpha, lora_targets).
type loraFlags struct {
	rank    int
	alpha   float64
	targets []string
}

func (l *loraFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.rank, "lora-rank", 0, "LoRA rank (0: full fine-tuning)")
	fs.Float64Var(&l.alpha, "lora-alpha", 0, "LoRA alpha (default 2×rank)")
	fs.StringSliceVar(&l.targets, "lora-targets", nil, "projections to adapt (default q_proj,k_proj,v_proj,o_proj)")
}
