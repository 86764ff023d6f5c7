package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/igscore"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

var scoreIGStage = &stage{
	name:    "score-ig",
	summary: "batch information-gain scoring of logged search trajectories",
	usage: `igsearch score-ig --model DIR --in TRAJ.jsonl --out SCORED.jsonl [flags]

Computes, for every search step t of every trajectory, the information gain
  IG_t = logP(a* | C_t^real) − (1/N) Σ_j logP(a* | C_t^rand,j)
where C_t^real is the text up to the first <search>, then each step ≤ t's
search, observation (and refine) blocks, and C_t^rand,j replaces step t's
observation (and refine) with a pair drawn from the chunk (or with random
passages from --index, with --ig-counterfactual corpus). logP is the
policy's head-weighted mean log-prob of the gold answer after
"\n<answer> " (weights 3 on the first 3 tokens). Steps are parsed from the
text, so plain logged trajectories work as well as rollout records.

Inputs:
  --model DIR        the policy (HF Qwen2 checkpoint or exported ONNX)
  --in FILE          JSONL of rollout records (as igsearch train and eval
                     write them) or of plain text trajectories
                     {"id","prompt","response","golden_answers"} in either
                     protocol's tags; "-" reads stdin
  --index DIR        only for --ig-counterfactual corpus
  --tokenizer PATH   tokenizer.json (default: MODEL/tokenizer.json)
Output:
  --out FILE         each input row with "ig_steps": [{"step","logp_real",
                     "logp_random_mean","ig"}] and "ig_mean" added; written
                     to a temporary file and renamed into place

Flags:
  --batch-size N     trajectories per chunk (default 256): the counterfactual
                     pool is the chunk; memory stays flat on any file size
  --protocol P       search-r1 (default) or autorefine, for rows without a
                     "protocol" field
  --ig-random N      counterfactual draws per step (default 3)
  --ig-gold R        first (default) or best:K
  --ig-counterfactual S  batch (default) or corpus
  --ig-max-context N context tokens kept, from the right (default 4096)
  --retrieval-topk K (3) --max-obs-tokens N (512)   the documents of a
                     corpus counterfactual and their token limit, as in train
  --ig-prefix-sharing  run every context prefix shared within a chunk once
                     (prompts, earlier steps, a step's real and
                     counterfactual contexts) and fork its KV cache
                     (default true)
  --ig-workers N     parts of a chunk scored at once, each with its own KV
                     caches (default 0: 2 on the CPU, 1 on CUDA); with
                     prefix sharing the IG does not depend on it
                     (these flags mean the same in train; the old names
                     --topk, --prefix-sharing and --workers still work,
                     deprecated)
  --skip-bad         skip rows that cannot be scored (no "response", or no
                     non-empty golden answer) and report how many on stderr;
                     without it such a row is an error naming its line
  --seed S           chunk k draws with seed S·1000003+k, as training's
                     iteration k, so one iteration's logged rollouts scored
                     as one chunk reproduce training's IG
  --shard i/n        score only chunks k with k mod n = i (with their seeds);
                     igsearch merge --block BATCH-SIZE of the n outputs is
                     byte-identical to the unsharded output
  --device D --threads N --ort-lib PATH --dtype fp32|fp16
  --report-transfers --strict-placement   device checks, as in logprobs

Example:
  igsearch score-ig --model out/demo/model-sft \
    --in out/demo/ig-grpo/rollouts/iter-00000.jsonl --out scored.jsonl
`,
	run: runScoreIG,
}

// scoreIGFlags are score-ig's settings.
type scoreIGFlags struct {
	pol                        policyFlags
	in, out, indexDir, tokPath string
	protocol                   string
	batch                      int
	ig                         train.IGConfig
	topk, maxObs               int
	skipBad                    bool
	seed                       uint64
	shard                      shardFlag
}

func runScoreIG(args []string) error {
	var f scoreIGFlags
	fs := newFlags("score-ig")
	f.pol.register(fs)
	fs.StringVar(&f.in, "in", "", "input JSONL (\"-\": stdin)")
	fs.StringVar(&f.out, "out", "", "output JSONL")
	fs.StringVar(&f.indexDir, "index", "", "index directory (for --ig-counterfactual corpus)")
	fs.StringVar(&f.tokPath, "tokenizer", "", "tokenizer.json (default MODEL/tokenizer.json)")
	fs.StringVar(&f.protocol, "protocol", "search-r1", "search-r1 or autorefine")
	fs.IntVar(&f.batch, "batch-size", 256, "trajectories per chunk")
	// Training's defaults, so that a logged iteration scores as training
	// scored it.
	def := train.DefaultConfig()
	f.ig, f.topk, f.maxObs = def.IG, def.Retriever.TopK, def.Rollout.MaxObsTokens
	bindIGScoringFlags(fs, &f.ig)
	aliasBool(fs, "prefix-sharing", "ig-prefix-sharing", &f.ig.PrefixSharing)
	aliasInt(fs, "workers", "ig-workers", &f.ig.Workers)
	bindPassageFlags(fs, &f.topk, &f.maxObs)
	fs.Uint64Var(&f.seed, "seed", train.DefaultConfig().Train.Seed, "seed of the counterfactual draws")
	fs.Var(&f.shard, "shard", shardUsage)
	fs.BoolVar(&f.skipBad, "skip-bad", false, "skip rows that cannot be scored (no response, no gold answer) and count them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var bad usageProblems
	bad.check(f.pol.model != "", "--model is required")
	bad.check(f.in != "", "--in is required")
	bad.check(f.out != "", "--out is required")
	bad.check(f.batch > 0, "--batch-size must be positive, is %d", f.batch)
	bad.check(f.ig.Random > 0, "--ig-random must be positive, is %d", f.ig.Random)
	bad.check(f.ig.Workers >= 0, "--ig-workers must be ≥ 0 (0: automatic), is %d", f.ig.Workers)
	bad.check(f.topk > 0, "--retrieval-topk must be positive, is %d", f.topk)
	bad.check(f.maxObs >= 0, "--max-obs-tokens must be ≥ 0 (0: none), is %d", f.maxObs)
	bad.check(fs.NArg() == 0, "unexpected arguments %v", fs.Args())
	opts := igscore.DefaultOptions()
	var err error
	opts.Protocol, err = protocol.Lookup(f.protocol)
	bad.checkErr(err)
	opts.IG.Gold, err = ig.ParseGold(f.ig.Gold)
	bad.checkErr(err)
	opts.IG.Counterfactual, err = ig.ParseCounterfactual(f.ig.Counterfactual)
	bad.checkErr(err)
	bad.check(opts.IG.Counterfactual != ig.CounterfactualCorpus || f.indexDir != "", "--ig-counterfactual corpus needs --index")
	if err := bad.err(); err != nil {
		return err
	}
	opts.IG.Random, opts.IG.MaxContext = f.ig.Random, f.ig.MaxContext
	opts.TopK, opts.MaxObsTokens, opts.PrefixSharing = f.topk, f.maxObs, f.ig.PrefixSharing
	opts.Workers = f.ig.Workers

	in := io.Reader(os.Stdin)
	name := "stdin"
	if f.in != "-" {
		file, err := os.Open(f.in)
		if err != nil {
			return err
		}
		defer file.Close()
		in, name = file, f.in
	}
	var tok *tokenize.Tokenizer
	if f.tokPath != "" {
		if tok, err = tokenize.Load(f.tokPath); err != nil {
			return err
		}
	}
	var ix *index.Index
	if f.indexDir != "" {
		if ix, err = index.Open(f.indexDir); err != nil {
			return err
		}
		defer ix.Close()
	}
	pol, err := f.pol.open(policy.Options{Tokenizer: tok})
	if err != nil {
		return err
	}
	defer pol.Close()
	defer f.pol.check.report()
	sc, err := igscore.New(pol, tok, ix, opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := scoreIGStream(ort.WithPhase(ctx, "ig"), sc, in, name, f.out, f.batch, f.seed, scoreIGChecks{skipBad: f.skipBad, model: f.pol.model}, f.shard)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "score-ig: %d trajectories scored into %s\n", st.scored, f.out)
	if st.skipped > 0 {
		fmt.Fprintf(os.Stderr, "score-ig: %d rows skipped (--skip-bad): %s\n", st.skipped, st.skippedLines())
	}
	return nil
}

// scoredRow is one input line, kept as parsed JSON so that its fields pass
// through unchanged, and its record.
type scoredRow struct {
	fields map[string]json.RawMessage
	rec    trajectory.Record
	line   int
}

// scoreIGStream reads trajectories from r in chunks of batch, scores each
// chunk as one batch (chunk k with seed train.IterationSeed(seed, k)) and
// writes the rows with their IG to out, atomically. A row that cannot be
// scored is an error naming its line, or skipped and counted (checks).
//
// With a shard, only the chunks k with k mod n = i are scored and written
// (every row is still read and checked, so chunks are the unsharded run's).
func scoreIGStream(ctx context.Context, sc *igscore.Scorer, r io.Reader, name, out string, batch int, seed uint64, checks scoreIGChecks, sh shardFlag) (scoreIGCounts, error) {
	var counts scoreIGCounts
	w, err := trajectory.Create(out)
	if err != nil {
		return counts, err
	}
	br := bufio.NewReaderSize(r, 1<<20)
	prog := newProgress("score-ig", "trajectories", 0)
	done, chunkNo, line, rows := 0, 0, 0, 0
	var chunk []scoredRow
	flush := func() error {
		recs := make([]trajectory.Record, len(chunk))
		for i := range chunk {
			recs[i] = chunk[i].rec
		}
		res, _, err := sc.Score(ctx, recs, train.IterationSeed(seed, chunkNo))
		if err != nil {
			return fmt.Errorf("chunk %d: %w", chunkNo, err)
		}
		for i, row := range chunk {
			if err := checks.finite(res[i]); err != nil {
				return fmt.Errorf("%s: line %d: %w", name, row.line, err)
			}
			steps, err := json.Marshal(res[i].Steps)
			if err != nil {
				return err
			}
			mean, err := json.Marshal(res[i].Mean)
			if err != nil {
				return err
			}
			row.fields["ig_steps"], row.fields["ig_mean"] = steps, mean
			if err := w.Write(row.fields); err != nil {
				return err
			}
		}
		done += len(chunk)
		chunkNo++
		chunk = chunk[:0]
		prog.update(0, int64(done))
		return nil
	}
	fail := func(err error) (scoreIGCounts, error) {
		w.Abort()
		counts.scored = done
		return counts, err
	}
	for {
		b, rerr := br.ReadBytes('\n')
		if len(b) > 0 {
			line++
			if t := bytes.TrimSpace(b); len(t) > 0 {
				var row scoredRow
				if err := json.Unmarshal(t, &row.fields); err != nil {
					return fail(fmt.Errorf("%s: line %d: %w", name, line, err))
				}
				if err := json.Unmarshal(t, &row.rec); err != nil {
					return fail(fmt.Errorf("%s: line %d: %w", name, line, err))
				}
				if err := row.rec.Validate(); err != nil {
					return fail(fmt.Errorf("%s: line %d: %w", name, line, err))
				}
				if why := unscorable(&row.rec); why != "" {
					if !checks.skipBad {
						return fail(fmt.Errorf("%s: line %d: %s: cannot be scored (--skip-bad skips such rows)", name, line, why))
					}
					counts.skip(line)
					continue
				}
				k := rows / batch // the row's chunk in the unsharded run
				rows++
				if !sh.owns(k) {
					continue
				}
				chunkNo = k
				row.line = line
				chunk = append(chunk, row)
				if len(chunk) == batch {
					if err := flush(); err != nil {
						return fail(err)
					}
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fail(fmt.Errorf("%s: line %d: %w", name, line+1, rerr))
		}
	}
	if len(chunk) > 0 {
		if err := flush(); err != nil {
			return fail(err)
		}
	}
	prog.finish()
	counts.scored = done
	if err := w.Close(); err != nil {
		return counts, err
	}
	return counts, nil
}
