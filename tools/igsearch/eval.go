package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/igsearch/igsearch/pipeline/train"
)

var evalStage = &stage{
	name:    "eval",
	summary: "EM and F1 of a policy by data_source, with the search agent",
	usage: `igsearch eval --model DIR --index DIR --data FILE [flags]

Runs the search agent greedily (one sample per question) on the questions in
FILE and scores the final answers with Search-R1's EM (SQuAD normalisation)
and F1, per data_source and over all questions.

Inputs:
  --model DIR        the policy: a Hugging Face Qwen2 checkpoint with
                     tokenizer.json (or --tokenizer)
  --index DIR        the BM25 index, or --retriever URL for a
                     Search-R1-compatible /retrieve server
  --data FILE        QA JSONL or Parquet {"id","question","golden_answers",
                     "data_source"}
Outputs:
  stdout             a table, then one JSON line:
                     {"by_source": {SRC: {"n","em","f1"}}, "overall": {...}}
  --out FILE         also write every trajectory (rollout records, JSONL)

Flags:
  --protocol P       search-r1 (default) or autorefine
  --chat             Qwen2.5 chat format (default true; --chat=false for a
                     base model's plain prompt)
  --topk K --max-turns N --max-new-tokens N --max-obs-tokens N
  --limit N          evaluate the first N questions
  --device D --threads N --ort-lib PATH

Example:
  igsearch eval --model out/demo/ig-grpo/checkpoint --index out/demo/index \
    --data out/demo/world/test.jsonl --chat=false --topk 1
`,
	run: runEval,
}

func runEval(args []string) error {
	cfg := train.DefaultConfig()
	fs := newFlags("eval")
	bindTrainFlags(fs, &cfg)
	data := fs.String("data", "", "QA JSONL or Parquet")
	fs.Bool("greedy", true, "greedy decoding (always on)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case cfg.Model.Path == "":
		return usagef("--model is required")
	case *data == "":
		return usagef("--data is required")
	case cfg.Retriever.Index == "" && cfg.Retriever.URL == "":
		return usagef("--index or --retriever is required")
	case fs.NArg() > 0:
		return usagef("unexpected arguments %v", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := train.EvalDir(ctx, cfg, cfg.Model.Path, *data, cfg.Data.Limit)
	if err != nil {
		return err
	}
	if fs.Changed("out") {
		if err := train.WriteRecords(cfg.Train.Out, res.Records); err != nil {
			return err
		}
	}
	fmt.Printf("%-16s %6s %7s %7s\n", "data_source", "n", "EM", "F1")
	for _, src := range res.Sources() {
		s := res.BySource[src]
		fmt.Printf("%-16s %6d %7.3f %7.3f\n", src, s.N, s.EM, s.F1)
	}
	fmt.Printf("%-16s %6d %7.3f %7.3f\n", "average", res.Overall.N, res.Overall.EM, res.Overall.F1)
	js, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(js))
	return nil
}
