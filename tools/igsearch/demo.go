package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/demo"
)

var demoStage = &stage{
	name:    "demo",
	summary: "the embedded default: a synthetic world where IG-GRPO learns on a CPU in minutes",
	usage: `igsearch demo [--out DIR] [--seed S] [--iterations N] [--no-grpo] [--test N]

Runs the whole method on a synthetic knowledge world small enough to learn on
a CPU in minutes:
  1. generates the world (entities, relations, wiki-style passages, questions
     by hop type, a word-level tokenizer, expert trajectories with precise,
     vague and redundant queries);
  2. builds the BM25 index over its passages;
  3. initialises a tiny Qwen2-shaped policy;
  4. warm-starts it by SFT on the expert trajectories, with real retrieval;
  5. evaluates it on the test split and scores the IG of expert queries;
  6. trains it with IG-GRPO;
  7. trains it with plain GRPO on the same budget, for comparison, at the
     same time as 6, each run on half the cores (with --no-grpo, IG-GRPO
     alone on all of them).
It ends with a one-screen summary: the test EM table by hop type (before RL,
after IG-GRPO, after GRPO) with paired 95% confidence intervals over the test
questions, the train reward trend and dev EM curve of each run, the IG of
precise, vague and redundant expert queries before and after RL, the fraction
of all-fail groups that still got a gradient, and the time of each stage.

Outputs (under --out): world/, index/, model-init/, model-sft/, ig-grpo/ and
grpo/ (metrics.jsonl, rollouts/, checkpoint/), report.json.

Flags:
  --out DIR          output directory (default out/demo)
  --seed S           seed of the world, the policy and the runs (default 1)
  --iterations N     RL iterations per run (default: the embedded default)
  --no-grpo          skip the plain-GRPO comparison run
  --test N           test questions in the world (default: the embedded
                     default; bench-demo asks for more, for power)
  --sft-questions N  train questions the warm start imitates the expert on;
                     RL trains on the others (default: the embedded default;
                     0: SFT on all and RL on all)
  --threads N        intra-op threads, of each RL run when the two go at
                     once (default: ONNX Runtime's choice; half the cores
                     for each of the two RL runs)
  --ort-lib PATH     the ONNX Runtime shared library (default: found by set-up)

Example:
  igsearch demo --out out/demo
`,
	run: runDemo,
}

func runDemo(args []string) error {
	fs := newFlags("demo")
	out := fs.String("out", "out/demo", "output directory")
	seed := fs.Uint64("seed", 1, "seed")
	iters := fs.Int("iterations", 0, "RL iterations per run")
	noGRPO := fs.Bool("no-grpo", false, "skip the plain-GRPO run")
	testN := fs.Int("test", 0, "test questions in the world (0: the embedded default)")
	sftQuestions := fs.Int("sft-questions", -1, "train questions SFT imitates the expert on; RL trains on the rest (-1: the default, 0: all)")
	threads := fs.Int("threads", 0, "intra-op threads")
	ortLib := fs.String("ort-lib", "", "ONNX Runtime shared library")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	if _, err := ort.InitDefault(*ortLib, ort.CPU); err != nil {
		return err
	}
	cfg := demo.Default()
	cfg.Out, cfg.Seed, cfg.World.Seed = *out, *seed, *seed
	cfg.RL.Model.Threads = *threads
	cfg.RL.Model.ORTLib = *ortLib
	cfg.SkipGRPO = *noGRPO
	if *testN > 0 {
		cfg.World.Test = *testN
	}
	if *sftQuestions >= 0 {
		cfg.SFTQuestions = *sftQuestions
	}
	if *iters > 0 {
		cfg.RL.Train.Iterations = *iters
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := demo.Run(ctx, cfg, func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%6.0fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	})
	if err != nil {
		return err
	}
	var names []string
	for k := range rep.Paths {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Println("\nOutputs:")
	width := 0
	for _, k := range names {
		width = max(width, len(k))
	}
	for _, k := range names {
		fmt.Printf("  %-*s  %s\n", width, k, rep.Paths[k])
	}
	fmt.Println()
	rep.Summary(os.Stdout)
	fmt.Printf("SFT loss: %.3f → %.3f\n", rep.SFTLoss[0], rep.SFTLoss[1])
	fmt.Printf("Total %.0fs\n", time.Since(start).Seconds())
	return nil
}
