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
	"sync"
	"testing"
	"time"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
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
// IGSEARCH_POLICY_BENCH_ATTENTION (standard|contrib, default: the policy's
// choice), IGSEARCH_POLICY_BENCH_PRESET (a qwen2.Presets name instead of the
// 100M shape, written in bf16), IGSEARCH_POLICY_BENCH_PREPACK=1 (let ONNX
// Runtime prepack the MatMul weights). It also reports this machine's
// memory read bandwidth ("membw"), measured in the same run, and the
// weights' fp32 bytes, which a B=1 decode step reads once per token.
// IGSEARCH_POLICY_BENCH_KV=both runs everything twice in the same process,
// with the host KV cache (Options.HostKV, the path before device residency)
// and with the resident one, alternated twice (take the best of each),
// reporting "kv" and the bytes that crossed the boundary per token; "host"
// or "resident" runs one (default: resident).
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
	prepack := os.Getenv("IGSEARCH_POLICY_BENCH_PREPACK") == "1"
	cfg, dt := qwen2.Bench100MConfig(), onnx.Float
	if name := os.Getenv("IGSEARCH_POLICY_BENCH_PRESET"); name != "" {
		var err error
		if cfg, err = qwen2.Preset(name); err != nil {
			t.Fatal(err)
		}
		dt = onnx.BFloat16
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		if err := qwen2.Save(dir, cfg, qwen2.InitAs(cfg, 1, dt), 0); err != nil {
			t.Fatal(err)
		}
	}
	threads := runtime.NumCPU()
	var weightBytes int64
	for _, n := range qwen2.WeightSizes(cfg, onnx.Float) {
		weightBytes += n
	}
	bw := memoryReadBandwidth()
	line, _ := json.Marshal(map[string]any{"impl": "igsearch", "what": "membw", "batch": 0, "bytes_per_s": bw, "threads": threads})
	fmt.Printf("BENCH %s\n", line)
	kvModes := []string{"resident"}
	switch m := os.Getenv("IGSEARCH_POLICY_BENCH_KV"); m {
	case "both":
		// Alternated, twice: on a shared machine the load drifts.
		kvModes = []string{"host", "resident", "host", "resident"}
	case "host", "resident":
		kvModes = []string{m}
	}
	for _, kv := range kvModes {
		benchPolicy(t, dir, cfg, kv, threads, attn, prepack, promptLen, steps, weightBytes)
	}
}

func benchPolicy(t *testing.T, dir string, cfg qwen2.Config, kv string, threads int, attn string, prepack bool, promptLen, steps int, weightBytes int64) {
	start := time.Now()
	p, err := Open(dir, Options{Threads: threads, Attention: attn, Prepack: prepack, HostKV: kv == "host"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Logf("opened %s in %v (%s, kv %s)", dir, time.Since(start), p.Source(), kv)
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
	report := func(what string, batch, tokens int, d time.Duration, moved ort.Transfer) {
		line, _ := json.Marshal(map[string]any{
			"impl": "igsearch", "what": what, "batch": batch, "tokens": tokens,
			"seconds": d.Seconds(), "tokens_per_s": float64(tokens) / d.Seconds(),
			"threads": threads, "attention": attn, "prompt": promptLen,
			"prepack": prepack, "weight_bytes": weightBytes, "kv": kv,
			"boundary_bytes_per_token": float64(moved.Bytes()) / float64(tokens),
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
		var preMoved, decMoved ort.Transfer
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
			m0 := ort.MeteredTransfers()
			t0 := time.Now()
			if _, err := b.Generate(ctx, rows, greedy); err != nil {
				t.Fatal(err)
			}
			pre := time.Since(t0)
			m1 := ort.MeteredTransfers()
			t0 = time.Now()
			sp := greedy
			sp.MaxNewTokens = steps
			if _, err := b.Generate(ctx, rows, sp); err != nil {
				t.Fatal(err)
			}
			d := time.Since(t0)
			preMoved, decMoved = m1.Sub(m0).Total(), ort.MeteredTransfers().Sub(m1).Total()
			if decode == 0 || d < decode {
				decode = d
			}
			return pre
		})
		report("prefill", batch, batch*promptLen, prefill, preMoved)
		report("decode", batch, batch*steps, decode, decMoved)
		seqs := make([][]int32, batch)
		for i, r := range prompts(batch) {
			seqs[i] = r.Prompt
		}
		var scoreMoved ort.Transfer
		score := best(3, func() time.Duration {
			m0 := ort.MeteredTransfers()
			t0 := time.Now()
			if _, err := p.Score(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			d := time.Since(t0)
			scoreMoved = ort.MeteredTransfers().Sub(m0).Total()
			return d
		})
		report("score", batch, batch*promptLen, score, scoreMoved)
	}
}

// memoryReadBandwidth is the best of a few timed reads of a 1 GiB buffer on
// every core, in bytes per second: the ceiling a memory-bound decode step
// can reach on this machine.
func memoryReadBandwidth() float64 {
	buf := make([]uint64, 1<<27) // 1 GiB
	for i := range buf {
		buf[i] = uint64(i)
	}
	workers := runtime.NumCPU()
	best := 0.0
	for range 5 {
		t0 := time.Now()
		var wg sync.WaitGroup
		sums := make([]uint64, workers)
		part := len(buf) / workers
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var s0, s1, s2, s3 uint64
				b := buf[w*part : (w+1)*part]
				for i := 0; i+3 < len(b); i += 4 {
					s0 += b[i]
					s1 += b[i+1]
					s2 += b[i+2]
					s3 += b[i+3]
				}
				sums[w] = s0 + s1 + s2 + s3
			}()
		}
		wg.Wait()
		if bw := float64(8*len(buf)) / time.Since(t0).Seconds(); bw > best {
			best = bw
		}
	}
	return best
}
