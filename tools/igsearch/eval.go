package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

var evalStage = &stage{
	name:    "eval",
	summary: "EM and F1 of a policy by data_source, with the search agent",
	usage: `igsearch eval --model DIR --index DIR --data FILE [flags]

Runs the search agent on the questions in FILE (greedy, one sample per
question, unless told otherwise) and scores the final answers with
Search-R1's EM (SQuAD normalisation: lowercase, no punctuation, no a/an/the)
and token F1, per data_source and averaged over all trajectories.

Inputs:
  --model DIR        the policy: a Hugging Face Qwen2 checkpoint (or exported
                     ONNX) with tokenizer.json, or --tokenizer PATH
  --index DIR        the BM25 index (or its shards, DIR0,DIR1,…), or
                     --retriever URL for any
                     Search-R1-compatible /retrieve server
  --data FILE        QA JSONL or Parquet {"id","question","golden_answers",
                     "data_source"}
Outputs:
  stderr             a table: data_source, n, EM, F1, and the average
  stdout             one JSON line: {"by_source": {SRC: {"n","em","f1"}},
                     "overall": {"n","em","f1"}}
  --out FILE         the same JSON, written atomically
  --records FILE     every trajectory, as rollout records (JSONL; the input
                     of igsearch score-ig)

Flags:
  --protocol P       search-r1 (default) or autorefine
  --chat             Qwen2.5 chat format (default true; --chat=false for a
                     base model's plain prompt)
  --greedy           greedy decoding (default true; --greedy=false samples
                     at --temperature with --seed)
  --group-size G     samples per question (default 1)
  --limit N          the first N questions (default all)
  --per-source N     the first N questions of each data_source (default
                     all): a merged test file lists its sets one after the
                     other, so --limit alone samples only the first
  --batch-size N     questions rolled out together (default 64)
  --retrieval-topk K (3) --max-turns N (4) --max-turn-tokens N (512)
  --max-obs-tokens N (512) --max-response-tokens N (4096)
  --max-context-tokens N  prompt + response, Search-R1's max_prompt_length
                     (default 0: no limit); a trajectory is cut there
  --rollout-micro-batch N  trajectories generated together (default 0: all)
  --top-p P --top-k K  sampling, with --greedy=false
                     (these flags mean the same in train; --topk and
                     --max-new-tokens still work, deprecated)
  --device D --threads N --ort-lib PATH --dtype fp32|fp16
  --report-transfers --strict-placement   device checks, as in logprobs

More than one machine:
  --shard i/n        roll out only batches b with b mod n = i (each with the
                     seed the whole run gives it); stdout and --out then
                     score this part alone
  --score-records F  no rollout: score the rollout records in F (e.g. the
                     parts' --records put together with igsearch merge
                     --block BATCH×GROUP), giving the unsharded run's JSON
                     byte for byte; needs no --model, --index or --data

Example:
  igsearch eval --model out/demo/ig-grpo/checkpoint --index out/demo/index \
    --data out/demo/world/test.jsonl --chat=false --retrieval-topk 1
`,
	run: runEval,
}

// evalResult is eval's JSON output: pipeline/train's evaluation, as
// training's dev evaluation and the demo score it.
type evalResult = train.EvalResult

func runEval(args []string) error {
	fs := newFlags("eval")
	var pf policyFlags
	pf.register(fs)
	data := fs.String("data", "", "QA JSONL or Parquet")
	var where train.RetrieverConfig
	bindRetrieverFlags(fs, &where)
	indexDir, retrURL := &where.Index, &where.URL
	tokPath := fs.String("tokenizer", "", "tokenizer.json (default MODEL/tokenizer.json)")
	out := fs.String("out", "", "write the JSON result to FILE")
	recordsPath := fs.String("records", "", "write the trajectories to FILE (JSONL)")
	limit := fs.Int("limit", 0, "evaluate the first N questions (0: all)")
	perSource := fs.Int("per-source", 0, "evaluate the first N questions of each data_source (0: all)")
	batch := fs.Int("batch-size", 64, "questions rolled out together")
	greedy := fs.Bool("greedy", true, "greedy decoding")
	var shard shardFlag
	fs.Var(&shard, "shard", "roll out only batches b ≡ i mod n")
	scoreRecords := fs.String("score-records", "", "score these rollout records instead of rolling out")
	// The agent's defaults are pipeline/rollout's, with one sample per
	// question.
	def := rollout.DefaultConfig()
	rc := train.RolloutConfig{Protocol: def.Protocol.Name, Chat: def.Chat, GroupSize: 1, MaxTurns: def.MaxTurns,
		MaxObsTokens: def.MaxObsTokens, MaxNewTokens: def.MaxNewTokens, MaxContext: def.MaxContext,
		MaxResponse: def.MaxResponse, Temperature: def.Temperature, TopP: def.TopP, SampleTopK: def.SampleTopK}
	topk := def.TopK
	bindAgentFlags(fs, &rc)
	bindPassageFlags(fs, &topk, &rc.MaxObsTokens)
	bindSamplingFlags(fs, &rc.Temperature, &rc.TopP, &rc.SampleTopK)
	seed := fs.Uint64("seed", 1, "sampling seed (with --greedy=false)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *scoreRecords != "" {
		if fs.NArg() > 0 {
			return usagef("unexpected arguments %v", fs.Args())
		}
		res, err := evalRecords(*scoreRecords)
		if err != nil {
			return err
		}
		return printEval(res, *out)
	}
	var bad usageProblems
	bad.check(pf.model != "", "--model is required")
	bad.check(*data != "", "--data is required")
	bad.check(*indexDir != "" || *retrURL != "", "--index or --retriever is required")
	bad.check(*indexDir == "" || *retrURL == "", "--index and --retriever exclude each other")
	bad.check(*batch > 0, "--batch-size must be positive, is %d", *batch)
	bad.check(rc.GroupSize > 0, "--group-size must be positive, is %d", rc.GroupSize)
	bad.check(topk > 0, "--retrieval-topk must be positive, is %d", topk)
	bad.check(rc.MaxTurns >= 0 && rc.MaxNewTokens > 0 && rc.MaxResponse > 0 && rc.MaxObsTokens >= 0 && rc.MaxContext >= 0,
		"token budgets: --max-turns, --max-obs-tokens and --max-context-tokens must be ≥ 0, --max-turn-tokens and --max-response-tokens positive")
	bad.check(fs.NArg() == 0, "unexpected arguments %v", fs.Args())
	proto, err := protocol.Lookup(rc.Protocol)
	bad.checkErr(err)
	if err := bad.err(); err != nil {
		return err
	}
	if *greedy {
		rc.Temperature = 0
	}
	cfg := train.AgentConfig(rc, topk, proto, rc.Temperature, *seed)
	var tok *tokenize.Tokenizer
	if *tokPath != "" {
		if tok, err = tokenize.Load(*tokPath); err != nil {
			return err
		}
	}
	var retr rollout.Retriever
	if *indexDir != "" {
		ix, err := openSearchIndex(*indexDir, 0, 0) // one index, or DIR0,DIR1,… shards
		if err != nil {
			return err
		}
		defer ix.Close()
		retr = ix
	} else {
		retr = index.NewRemoteRetriever(*retrURL)
	}
	qr, err := qa.Open(*data)
	if err != nil {
		return err
	}
	defer qr.Close()
	pol, err := pf.open(policy.Options{Tokenizer: tok})
	if err != nil {
		return err
	}
	defer pol.Close()
	defer pf.check.report()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := evaluate(ctx, pol, retr, qr, cfg, *limit, *perSource, *batch, *recordsPath, shard)
	if err != nil {
		return err
	}
	return printEval(res, *out)
}

// evalRecords scores the rollout records in path, in file order, as
// evaluate scores them after their rollout.
func evalRecords(path string) (*evalResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := train.NewEvalResult()
	tr := trajectory.NewReader(f, path)
	for {
		rec, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		res.Add(&rec)
	}
}

// printEval writes the table to stderr and the JSON to stdout and, when out
// is not "", to out.
func printEval(res *evalResult, out string) error {
	res.Table(os.Stderr)
	js, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if out != "" {
		if err := writeFileAtomic(out, js); err != nil {
			return err
		}
	}
	fmt.Println(string(js))
	return nil
}

// evaluate rolls out the questions of qr in batches and scores them,
// writing the records to recordsPath when it is not "". With perSource > 0
// only the first perSource questions of each data_source are kept. With a
// shard, only the shard's batches are rolled out and scored.
func evaluate(ctx context.Context, pol *policy.Policy, retr rollout.Retriever, qr *qa.Reader, cfg rollout.Config, limit, perSource, batch int, recordsPath string, sh shardFlag) (*evalResult, error) {
	var w *trajectory.Writer
	if recordsPath != "" {
		var err error
		if w, err = trajectory.Create(recordsPath); err != nil {
			return nil, err
		}
		defer func() {
			if w != nil {
				w.Abort()
			}
		}()
	}
	res := train.NewEvalResult()
	prog := newProgress("eval", "questions", int64(max(limit, 0)))
	seen := 0
	taken := map[string]int{} // questions kept per data_source
	baseSeed := cfg.Seed
	for b := 0; ; b++ {
		var qs []qa.Example
		for len(qs) < batch && (limit <= 0 || seen+len(qs) < limit) {
			q, err := qr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if perSource > 0 {
				if taken[q.DataSource] >= perSource {
					continue
				}
				taken[q.DataSource]++
			}
			qs = append(qs, q)
		}
		if len(qs) == 0 {
			break
		}
		if !sh.owns(b) {
			seen += len(qs)
			continue
		}
		cfg.Seed = baseSeed*1_000_003 + uint64(b)
		recs, _, err := rollout.Run(ctx, pol, retr, qs, cfg)
		if err != nil {
			return nil, err
		}
		for i := range recs {
			res.Add(&recs[i])
			if w != nil {
				if err := w.Write(&recs[i]); err != nil {
					return nil, err
				}
			}
		}
		seen += len(qs)
		prog.update(int64(seen), int64(seen))
	}
	prog.finish()
	if w != nil {
		err := w.Close()
		w = nil
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// writeFileAtomic writes one JSON value as a line to a temporary file beside
// path and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	w, err := trajectory.Create(path)
	if err != nil {
		return err
	}
	var v json.RawMessage = data
	if err := w.Write(v); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}
