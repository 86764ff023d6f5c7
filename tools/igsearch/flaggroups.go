package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/train"
)

// The flag groups that several stages share, so that a flag has one name,
// one meaning and one default in every stage that takes it. A train config
// key is the flag's name with "_" for "-", except retriever.topk, which is
// --retrieval-topk (Search-R1's key, beside the sampler's --top-k).
//
// Renamed flags keep their old name for one release as a deprecated alias
// that still works and says what replaces it.

// aliasInt registers old as a deprecated second name of the int flag bound
// to p, whose name is now name.
func aliasInt(fs *flag.FlagSet, old, name string, p *int) {
	fs.IntVar(p, old, *p, "deprecated: use --"+name)
	fs.MarkDeprecated(old, "use --"+name)
}

// aliasBool is aliasInt for a bool flag.
func aliasBool(fs *flag.FlagSet, old, name string, p *bool) {
	fs.BoolVar(p, old, *p, "deprecated: use --"+name)
	fs.MarkDeprecated(old, "use --"+name)
}

// bindModelFlags binds the policy's flags: --model --device --threads
// --ort-lib.
func bindModelFlags(fs *flag.FlagSet, path, device, ortLib *string, threads *int) {
	fs.StringVar(path, "model", *path, "model directory: HF checkpoint or exported ONNX")
	fs.StringVar(device, "device", *device, "cpu, cuda or cuda:N")
	fs.IntVar(threads, "threads", *threads, "intra-op threads (0: ONNX Runtime's default)")
	fs.StringVar(ortLib, "ort-lib", *ortLib, "ONNX Runtime shared library")
}

// bindRetrieverFlags binds where searches go: --index (an index directory,
// or its shards DIR0,DIR1,…) or --retriever (a Search-R1 /retrieve URL).
func bindRetrieverFlags(fs *flag.FlagSet, r *train.RetrieverConfig) {
	fs.StringVar(&r.Index, "index", r.Index, "index directory")
	fs.StringVar(&r.URL, "retriever", r.URL, "Search-R1 /retrieve server URL")
}

// bindPassageFlags binds what a search returns: --retrieval-topk passages
// (old name --topk), each cut to --max-obs-tokens tokens (0: no limit).
func bindPassageFlags(fs *flag.FlagSet, topk, maxObs *int) {
	fs.IntVar(topk, "retrieval-topk", *topk, "passages per search")
	aliasInt(fs, "topk", "retrieval-topk", topk)
	fs.IntVar(maxObs, "max-obs-tokens", *maxObs, "observation token limit (0: none)")
}

// bindSamplingFlags binds the sampler: --temperature, --top-p, --top-k.
func bindSamplingFlags(fs *flag.FlagSet, temperature, topP *float64, topK *int) {
	fs.Float64Var(temperature, "temperature", *temperature, "sampling temperature (0: greedy)")
	fs.Float64Var(topP, "top-p", *topP, "nucleus sampling mass (0 or 1: keep all)")
	fs.IntVar(topK, "top-k", *topK, "keep the K most probable tokens (0: all)")
}

// bindAgentFlags binds the search agent's shape: the protocol, the prompt
// format, the samples per question and the token budgets (old name of
// --max-turn-tokens: --max-new-tokens).
func bindAgentFlags(fs *flag.FlagSet, r *train.RolloutConfig) {
	fs.StringVar(&r.Protocol, "protocol", r.Protocol, "search-r1 or autorefine")
	fs.BoolVar(&r.Chat, "chat", r.Chat, "Qwen2.5 chat format (--chat=false: plain prompt)")
	fs.IntVar(&r.GroupSize, "group-size", r.GroupSize, "samples per question")
	fs.IntVar(&r.MaxTurns, "max-turns", r.MaxTurns, "search turns before the answer turn")
	fs.IntVar(&r.MaxNewTokens, "max-turn-tokens", r.MaxNewTokens, "tokens generated per turn (Search-R1's max_response_length)")
	aliasInt(fs, "max-new-tokens", "max-turn-tokens", &r.MaxNewTokens)
	fs.IntVar(&r.MaxContext, "max-context-tokens", r.MaxContext, "prompt + response tokens (Search-R1's max_prompt_length; 0: no limit)")
	fs.IntVar(&r.MaxResponse, "max-response-tokens", r.MaxResponse, "response tokens per trajectory")
	fs.IntVar(&r.MicroBatch, "rollout-micro-batch", r.MicroBatch, "trajectories generated together (0: all)")
}

// bindIGScoringFlags binds how IG is scored (old score-ig names:
// --prefix-sharing, --workers).
func bindIGScoringFlags(fs *flag.FlagSet, g *train.IGConfig) {
	fs.IntVar(&g.Random, "ig-random", g.Random, "counterfactual draws per step")
	fs.StringVar(&g.Gold, "ig-gold", g.Gold, "first or best:K")
	fs.StringVar(&g.Counterfactual, "ig-counterfactual", g.Counterfactual, "batch or corpus")
	fs.IntVar(&g.MaxContext, "ig-max-context", g.MaxContext, "context tokens kept, from the right")
	fs.BoolVar(&g.PrefixSharing, "ig-prefix-sharing", g.PrefixSharing, "score every shared context prefix once")
	fs.IntVar(&g.Workers, "ig-workers", g.Workers, "parts of a batch scored at once (0: 2 on the CPU, 1 on CUDA)")
}

// usageProblems collects a stage's bad flags, so that one usage error lists
// them all instead of the first.
type usageProblems []string

// check adds the problem unless ok.
func (u *usageProblems) check(ok bool, format string, a ...any) {
	if !ok {
		*u = append(*u, fmt.Sprintf(format, a...))
	}
}

// checkErr adds err's message, if any.
func (u *usageProblems) checkErr(err error) {
	if err != nil {
		*u = append(*u, err.Error())
	}
}

// err is the usage error listing every problem, nil if none.
func (u usageProblems) err() error {
	if len(u) == 0 {
		return nil
	}
	return usagef("%s", strings.Join(u, "\n  "))
}

// checkFlags are the device-check flags of every stage that runs a model:
// --report-transfers prints, when the stage ends, what crossed between Go
// memory and ONNX Runtime (the boundary meter) by phase; --strict-placement
// makes opening a CUDA session fail when its attention or MatMul nodes land
// on the CPU execution provider (without it, a warning).
type checkFlags struct {
	reportTransfers bool
	strictPlacement bool
	start           ort.Transfers
}

// bindCheckFlags binds --report-transfers and --strict-placement.
func bindCheckFlags(fs *flag.FlagSet, c *checkFlags) {
	fs.BoolVar(&c.reportTransfers, "report-transfers", c.reportTransfers, "print the bytes moved between Go memory and ONNX Runtime, by phase, to stderr at the end")
	fs.BoolVar(&c.strictPlacement, "strict-placement", c.strictPlacement, "fail when a CUDA session places attention or MatMul nodes on the CPU (default: warn)")
}

// begin applies the flags before the stage opens its sessions, and takes
// the meter's starting snapshot.
func (c *checkFlags) begin() {
	if c.strictPlacement {
		ort.SetStrictPlacement(true)
	}
	c.start = ort.MeteredTransfers()
}

// report prints the transfers since begin to stderr, if asked for.
func (c *checkFlags) report() {
	if c.reportTransfers {
		writeTransfers(os.Stderr, ort.MeteredTransfers().Sub(c.start))
	}
}

// writeTransfers prints t as a table, one line per phase and a total, each
// starting "transfers" (for grep): the session runs, the bytes to and from
// ONNX Runtime, and the bytes per run.
func writeTransfers(w io.Writer, t ort.Transfers) {
	width := len("total")
	for p := range t {
		width = max(width, len(p))
	}
	fmt.Fprintf(w, "transfers %-*s %8s %14s %14s %14s\n", width, "phase", "runs", "to_ort_bytes", "from_ort_bytes", "bytes_per_run")
	row := func(phase string, x ort.Transfer) {
		per := int64(0)
		if x.Runs > 0 {
			per = x.Bytes() / x.Runs
		}
		fmt.Fprintf(w, "transfers %-*s %8d %14d %14d %14d\n", width, phase, x.Runs, x.ToORT, x.FromORT, per)
	}
	for _, p := range t.Phases() {
		row(p, t[p])
	}
	row("total", t.Total())
}
