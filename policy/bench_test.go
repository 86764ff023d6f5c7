package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/igsearch/igsearch/models/qwen2"
)

// TestPolicyBench measures prefill, decode and scoring throughput on the
// ~100M benchmark model (qwen2.Bench100MConfig). It runs only when
// IGSEARCH_POLICY_BENCH names a directory: the checkpoint is written there
// (seed 1) when missing, so that the PyTorch reference
// (tools/bench/torchref) can load the same weights. scripts/bench.d/40-policy.sh
// drives it. Each result is one line "BENCH {json}" on stdout.
//
// Knobs: IGSEARCH_POLICY_BENCH_PROMPT (prompt tokens, default 128),
// IGSEARCH_POLICY_BENCH_DECODE (decode steps, default 32),
// IGSEARCH_POLICY_BENCH_ATTENTION (standard|contrib, default contrib).
func TestPolicyBench(t *testing.T) {
	dir := os.Getenv("IGSEARCH_POLICY_BENCH")
	if dir == "" {
		t.Skip("set IGSEARCH_POLICY_BENCH=DIR to run the policy benchmark")
	}
	needORT(t)
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	promptLen := env("IGSEARCH_POLICY_BENCH_PROMPT", 128)
	steps := env("IGSEARCH_POLICY_BENCH_DECODE", 32)
	attn := os.Getenv("IGSEARCH_POLICY_BENCH_ATTENTION")
	if attn == "" {
		attn = "contrib"
	}
	cfg := qwen2.Bench100MConfig()
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		if err := qwen2.Save(dir, cfg, qwen2.Init(cfg, 1), 0); err != nil {
			t.Fatal(err)
		}
	}
	threads := runtime.NumCPU()
	start := time.Now()
	p, err := Open(dir, Options{Threads: threads, Attention: attn})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Logf("opened %s in %v (%s)", dir, time.Since(start), p.Source())
	ctx := context.Background()
	prompts := func(b int) []Request {
		r := rand.New(rand.NewPCG(9, 9))
		reqs := make([]Request, b)
		for i := range reqs {
			ids := make([]int32, promptLen)
			for j := range ids {
				ids[j] = int32(r.IntN(cfg.VocabSize))
			}
			reqs[i] = Request{Prompt: ids, Seed: uint64(i)}
		}
		return reqs
	}
	report := func(what string, batch, tokens int, d time.Duration) {
		line, _ := json.Marshal(map[string]any{
			"impl": "igsearch", "what": what, "batch": batch, "tokens": tokens,
			"seconds": d.Seconds(), "tokens_per_s": float64(tokens) / d.Seconds(),
			"threads": threads, "attention": attn, "prompt": promptLen,
		})
		fmt.Printf("BENCH %s\n", line)
	}
	greedy := SamplingParams{MaxNewTokens: 1, EOS: []int32{}}
	for _, batch := range []int{1, 16} {
		// Warm-up, then the best of a few runs of each phase.
		best := func(reps int, f func() time.Duration) time.Duration {
			b := time.Duration(1<<63 - 1)
			for range reps {
				b = min(b, f())
			}
			return b
		}
		var decode time.Duration
		prefill := best(3, func() time.Duration {
			b, err := p.NewBatch(prompts(batch))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			rows := make([]int, batch)
			for i := range rows {
				rows[i] = i
			}
			t0 := time.Now()
			if _, err := b.Generate(ctx, rows, greedy); err != nil {
				t.Fatal(err)
			}
			pre := time.Since(t0)
			t0 = time.Now()
			sp := greedy
			sp.MaxNewTokens = steps
			if _, err := b.Generate(ctx, rows, sp); err != nil {
				t.Fatal(err)
			}
			d := time.Since(t0)
			if decode == 0 || d < decode {
				decode = d
			}
			return pre
		})
		report("prefill", batch, batch*promptLen, prefill)
		report("decode", batch, batch*steps, decode)
		seqs := make([][]int32, batch)
		for i, r := range prompts(batch) {
			seqs[i] = r.Prompt
		}
		score := best(3, func() time.Duration {
			t0 := time.Now()
			if _, err := p.Score(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			return time.Since(t0)
		})
		report("score", batch, batch*promptLen, score)
	}
}
