package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/trajectory"
)

var scoreIGStage = &stage{
	name:    "score-ig",
	summary: "batch information-gain scoring of logged search trajectories",
	usage: `igsearch score-ig --model DIR --in TRAJ.jsonl --out SCORED.jsonl [flags]

Computes, for every search step t of every trajectory, the information gain
  IG_t = logP(a* | C_t^real) − (1/N) Σ_j logP(a* | C_t^rand,j)
where C_t^real is the prompt up to the first <search>, then each step ≤ t's
search and observation blocks, and C_t^rand,j replaces step t's observation
with one drawn from the batch (or with random passages from --index, with
--ig-counterfactual corpus). logP is the policy's head-weighted mean log-prob
of the gold answer after "\n<answer> " (weights 3 on the first 3 tokens).

Inputs:
  --model DIR        the policy (HF Qwen2 checkpoint + tokenizer.json)
  --in FILE          JSONL of rollout records (as igsearch train writes them)
                     or of plain text trajectories
                     {"id","prompt","response","golden_answers"} in either
                     protocol's tags; "-" reads stdin
  --index DIR        only for --ig-counterfactual corpus
Output:
  --out FILE         the input rows with "ig_steps": [{"step","logp_real",
                     "logp_random_mean","ig"}] and "ig_mean" added; written to
                     a temporary file and renamed into place

Flags:
  --batch-size N     trajectories per chunk; the counterfactual pool is the
                     chunk, and memory stays flat on any file size (default 256)
  --protocol P       search-r1 (default) or autorefine
  --ig-random N --ig-gold first|best:K --ig-counterfactual batch|corpus
  --ig-max-context N --seed S --tokenizer PATH --device D --threads N

Example:
  igsearch score-ig --model out/demo/model-sft \
    --in out/demo/ig-grpo/rollouts/iter-00000.jsonl --out scored.jsonl
`,
	run: runScoreIG,
}

func runScoreIG(args []string) error {
	cfg := train.DefaultConfig()
	fs := newFlags("score-ig")
	bindTrainFlags(fs, &cfg)
	in := fs.String("in", "", "input JSONL")
	batch := fs.Int("batch-size", 256, "trajectories per chunk")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out := cfg.Train.Out
	switch {
	case cfg.Model.Path == "":
		return usagef("--model is required")
	case *in == "":
		return usagef("--in is required")
	case !fs.Changed("out"):
		return usagef("--out is required")
	case *batch <= 0:
		return usagef("--batch-size must be positive")
	case fs.NArg() > 0:
		return usagef("unexpected arguments %v", fs.Args())
	}
	if cfg.IG.Counterfactual == "corpus" && cfg.Retriever.Index == "" {
		return usagef("--ig-counterfactual corpus needs --index")
	}
	r := io.Reader(os.Stdin)
	name := "stdin"
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, *in
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc, err := train.NewScorer(cfg, cfg.Model.Path)
	if err != nil {
		return err
	}
	defer sc.Close()
	w, err := trajectory.Create(out)
	if err != nil {
		return err
	}
	rd := trajectory.NewReader(r, name)
	prog := newProgress("score-ig", "trajectories", 0)
	done := int64(0)
	flush := func(chunk []trajectory.Record) error {
		res, err := sc.Score(ctx, chunk)
		if err != nil {
			return err
		}
		for i := range chunk {
			mean := res[i].Mean
			chunk[i].IGSteps, chunk[i].IGMean = res[i].Steps, &mean
			if err := w.Write(&chunk[i]); err != nil {
				return err
			}
		}
		done += int64(len(chunk))
		prog.update(0, done)
		return nil
	}
	var chunk []trajectory.Record
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.Abort()
			return err
		}
		chunk = append(chunk, rec)
		if len(chunk) == *batch {
			if err := flush(chunk); err != nil {
				w.Abort()
				return err
			}
			chunk = chunk[:0]
		}
	}
	if len(chunk) > 0 {
		if err := flush(chunk); err != nil {
			w.Abort()
			return err
		}
	}
	prog.finish()
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "score-ig: %d trajectories scored into %s\n", done, out)
	return nil
}
