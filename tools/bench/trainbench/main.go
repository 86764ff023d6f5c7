// Command trainbench times igsearch's GRPO train step on CPU, the Go side of
// scripts/bench.d/50-trainer.sh (tools/bench/torchtrain is the PyTorch peer).
//
//	trainbench prepare --out DIR [--batch 8] [--seq 256] [--seed 1]
//	    writes DIR/model (HF layout, F32, qwen2.TrainBenchConfig with HF's
//	    random initialisation) and DIR/batch.json (a GRPO batch in the
//	    grpo_step.json layout that both implementations read)
//	trainbench run --model DIR/model --batch DIR/batch.json [--steps 3]
//	    runs one warm-up step and --steps timed steps, then prints one
//	    "RESULT igsearch {json}" line: seconds per step (mean, min), the first
//	    step's loss and grad norm, and peak RSS
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/trainer"
	"github.com/spf13/pflag"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: trainbench prepare|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "prepare":
		err = prepare(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: prepare or run", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trainbench:", err)
		os.Exit(1)
	}
}

func prepare(args []string) error {
	fs := pflag.NewFlagSet("prepare", pflag.ContinueOnError)
	out := fs.String("out", "", "output directory")
	batch := fs.Int("batch", 8, "sequences per step")
	seq := fs.Int("seq", 256, "tokens per sequence")
	seed := fs.Uint64("seed", 1, "seed of the weights and the batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("prepare: --out is required")
	}
	cfg := qwen2.TrainBenchConfig()
	if err := qwen2.Save(filepath.Join(*out, "model"), cfg, qwen2.Init(cfg, *seed), 0); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	// A GRPO batch: a 64-token prompt (some rows left padded by up to 32)
	// and a trained completion; logprobs near a random model's -ln V.
	rng := rand.New(rand.NewPCG(*seed, 2))
	f := trainer.StepFile{}
	base := -math.Log(float64(cfg.VocabSize))
	for r := 0; r < *batch; r++ {
		pad := 0
		if r%2 == 1 {
			pad = rng.IntN(32)
		}
		ids, mask := make([]int64, *seq), make([]int64, *seq)
		lm, adv, old, ref := make([]float32, *seq-1), make([]float32, *seq-1), make([]float32, *seq-1), make([]float32, *seq-1)
		a := float32(rng.NormFloat64())
		for i := range ids {
			if i >= pad {
				ids[i], mask[i] = int64(rng.IntN(cfg.VocabSize)), 1
			}
			if i < *seq-1 {
				if i >= 64 {
					lm[i], adv[i] = 1, a
				}
				old[i] = float32(base + 0.05*rng.NormFloat64())
				ref[i] = float32(base + 0.05*rng.NormFloat64())
			}
		}
		f.InputIDs = append(f.InputIDs, ids)
		f.AttentionMask = append(f.AttentionMask, mask)
		f.LossMask = append(f.LossMask, lm)
		f.Advantages = append(f.Advantages, adv)
		f.OldLogprobs = append(f.OldLogprobs, old)
		f.RefLogprobs = append(f.RefLogprobs, ref)
	}
	clip, kl, lr, wd, eps, clipNorm := 0.2, 0.001, 1e-5, 0.01, 1e-8, 1.0
	f.LossType, f.ClipEps, f.KLBeta, f.LR, f.WeightDecay, f.AdamEps, f.MaxGradNorm = "grpo", &clip, &kl, &lr, &wd, &eps, &clipNorm
	f.AdamBetas = []float64{0.9, 0.999}
	js, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "batch.json"), js, 0o644); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func run(args []string) error {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	model := fs.String("model", "", "HF checkpoint directory (F32)")
	batchPath := fs.String("batch", "", "batch file (grpo_step.json layout)")
	steps := fs.Int("steps", 3, "timed steps after one warm-up step (0: the warm-up step only, for peak RSS)")
	micro := fs.Int("micro-batch", 0, "sequences per gradient-graph run (0: whole batch)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.Device{}); err != nil {
		return err
	}
	f, err := trainer.ReadStepFile(*batchPath)
	if err != nil {
		return err
	}
	ck, err := qwen2.LoadCheckpoint(*model, onnx.Float)
	if err != nil {
		return err
	}
	loss, opt := f.Configs()
	t0 := time.Now()
	tr, err := trainer.New(ck.Config, ck.Weights, trainer.Options{Artifact: trainer.ArtifactOptions{Loss: loss}, Optim: opt, MicroBatch: *micro})
	if err != nil {
		return err
	}
	defer tr.Close()
	ck.Close()
	setup := time.Since(t0).Seconds()
	b := f.Batch()
	var first trainer.Metrics
	var times []float64
	for i := 0; i <= *steps; i++ {
		t := time.Now()
		m, err := tr.Step(b)
		if err != nil {
			return err
		}
		if i == 0 {
			first = m
			fmt.Fprintf(os.Stderr, "igsearch warm-up step %.2fs loss %.6g grad_norm %.6g\n", time.Since(t).Seconds(), m.Loss, m.GradNorm)
			continue
		}
		times = append(times, time.Since(t).Seconds())
		fmt.Fprintf(os.Stderr, "igsearch step %d %.2fs (gradient %.2fs, optimizer %.2fs)\n", i, times[len(times)-1], m.GradSeconds, m.OptimSeconds)
	}
	mean, best := 0.0, 0.0
	for i, s := range times {
		if i == 0 || s < best {
			best = s
		}
		mean += s / float64(len(times))
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	js, _ := json.Marshal(map[string]any{
		"impl": "igsearch", "step_s": mean, "step_min_s": best, "steps": len(times), "setup_s": setup,
		"loss": first.Loss, "grad_norm": first.GradNorm, "peak_rss_mb": float64(ru.Maxrss) / 1024,
		"batch": len(b.InputIDs), "seq": len(b.InputIDs[0]), "micro_batch": *micro,
	})
	fmt.Printf("RESULT igsearch %s\n", js)
	return nil
}
