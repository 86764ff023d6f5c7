package qwen2

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/igsearch/igsearch/onnx"
)

// Benchmarks on the ~100M-parameter shape of issue 4 (Bench100MConfig, random
// weights), for both attention variants, through ONNX Runtime on CPU:
//
//	go test ./models/qwen2 -run '^$' -bench Qwen2 -benchtime 1x
//
// Each reports tokens/s: prefill of 128 tokens, 32 decode steps after a
// 32-token prompt (batch 1 and 16), and scoring 128 tokens per row. Besides
// wall-clock tok/s they report tok/cpu-s, tokens per second of this
// process's CPU time (sessions do not spin), which is steadier than wall time
// on cores shared with other work.

var (
	benchOnce    sync.Once
	benchWeights Weights
)

func benchSetup(b *testing.B) (Config, Weights) {
	cfg := Bench100MConfig()
	benchOnce.Do(func() { benchWeights = Init(cfg, 1) })
	return cfg, benchWeights
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter accumulates wall and CPU time over timed sections.
type meter struct {
	wall, cpu time.Duration
	start     time.Time
	c0        time.Duration
}

func (m *meter) begin() { m.start, m.c0 = time.Now(), cpuTime() }
func (m *meter) end()   { m.wall += time.Since(m.start); m.cpu += cpuTime() - m.c0 }
func (m *meter) report(b *testing.B, tokens int) {
	b.ReportMetric(float64(tokens)/m.wall.Seconds(), "tok/s")
	b.ReportMetric(float64(tokens)/m.cpu.Seconds(), "tok/cpu-s")
}

func benchIDs(batch, n int) [][]int64 {
	ids := make([][]int64, batch)
	for b := range ids {
		ids[b] = make([]int64, n)
		for i := range ids[b] {
			ids[b][i] = int64((b*7919 + i*104729) % 1000)
		}
	}
	return ids
}

func ones(batch, n int) [][]int64 {
	m := make([][]int64, batch)
	for b := range m {
		m[b] = make([]int64, n)
		for i := range m[b] {
			m[b][i] = 1
		}
	}
	return m
}

func positions(batch, from, n int) [][]int64 {
	p := make([][]int64, batch)
	for b := range p {
		p[b] = make([]int64, n)
		for i := range p[b] {
			p[b][i] = int64(from + i)
		}
	}
	return p
}

func BenchmarkQwen2(b *testing.B) {
	cfg, w := benchSetup(b)
	threads := runtime.NumCPU()
	for _, attn := range []Attention{StandardAttention, ContribAttention} {
		g, err := BuildInference(cfg, w, Options{Attention: attn})
		if err != nil {
			b.Fatal(err)
		}
		s := newTestSession(b, g, threads)
		b.Run(fmt.Sprintf("%s/prefill_b1_t128", attn), func(b *testing.B) {
			var m meter
			for i := 0; i < b.N; i++ {
				gen := newGeneration(s, cfg, 1)
				m.begin()
				gen.step(b, benchIDs(1, 128), ones(1, 128), positions(1, 0, 128))
				m.end()
			}
			m.report(b, 128*b.N)
		})
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/decode_b%d", attn, batch), func(b *testing.B) {
				var m meter
				for i := 0; i < b.N; i++ {
					gen := newGeneration(s, cfg, batch)
					gen.step(b, benchIDs(batch, 32), ones(batch, 32), positions(batch, 0, 32))
					m.begin()
					for step := 0; step < 32; step++ {
						tok := make([]int64, batch)
						for r := range tok {
							tok[r] = int64(1000 + step + r)
						}
						gen.decodeStep(b, tok)
					}
					m.end()
				}
				m.report(b, 32*batch*b.N)
			})
		}
		sg, err := BuildScoring(cfg, w, Options{Attention: attn})
		if err != nil {
			b.Fatal(err)
		}
		ss := newTestSession(b, sg, threads)
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/scoring_b%d_t128", attn, batch), func(b *testing.B) {
				ref := &reference{InputIDs: benchIDs(batch, 128), AttentionMask: ones(batch, 128)}
				var m meter
				for i := 0; i < b.N; i++ {
					m.begin()
					score(b, ss, ref)
					m.end()
				}
				m.report(b, 128*batch*b.N)
			})
		}
	}
}

// BenchmarkAttentionLongContext compares the two attention variants where
// attention matters: the bench shape with a 1024-token vocabulary (so that
// the lm_head does not dominate) and 2048-token contexts.
//
//	go test ./models/qwen2 -run '^$' -bench AttentionLongContext -benchtime 3x
func BenchmarkAttentionLongContext(b *testing.B) {
	cfg := Bench100MConfig()
	cfg.VocabSize = 1024
	w := Init(cfg, 1)
	const ctx = 2048
	for _, attn := range []Attention{StandardAttention, ContribAttention} {
		g, err := BuildInference(cfg, w, Options{Attention: attn})
		if err != nil {
			b.Fatal(err)
		}
		s := newTestSession(b, g, runtime.NumCPU())
		b.Run(fmt.Sprintf("%s/prefill_b1_t%d", attn, ctx), func(b *testing.B) {
			var m meter
			for i := 0; i < b.N; i++ {
				gen := newGeneration(s, cfg, 1)
				m.begin()
				gen.step(b, benchIDs(1, ctx), ones(1, ctx), positions(1, 0, ctx))
				m.end()
			}
			m.report(b, ctx*b.N)
		})
		b.Run(fmt.Sprintf("%s/decode_b4_ctx%d", attn, ctx), func(b *testing.B) {
			gen := newGeneration(s, cfg, 4)
			gen.step(b, benchIDs(4, ctx), ones(4, ctx), positions(4, 0, ctx))
			var m meter
			for i := 0; i < b.N; i++ {
				m.begin()
				gen.decodeStep(b, []int64{1, 2, 3, 4})
				m.end()
			}
			m.report(b, 4*b.N)
		})
	}
}

// BenchmarkCPUWeightDType is the measurement behind the CPU weight-type
// choice (docs/results.md, "Real-size Qwen2.5"): the scoring graph of the
// bench shape over fp32 weights against fp16 ones (what a bf16 checkpoint
// could be kept as; ONNX Runtime's CPU provider has no bf16 MatMul), with
// the linear layers as MatMul over a transposed weight and as FusedMatMul.
//
//	go test ./models/qwen2 -run '^$' -bench CPUWeightDType -benchtime 3x
func BenchmarkCPUWeightDType(b *testing.B) {
	cfg, w32 := benchSetup(b)
	w16 := Weights{}
	for name, t := range w32 {
		f := t.Floats()
		raw := make([]byte, 2*len(f))
		for i, x := range f {
			binary.LittleEndian.PutUint16(raw[2*i:], onnx.Float32ToFloat16(x))
		}
		w16[name] = &onnx.Tensor{DType: onnx.Float16, Dims: t.Dims, Raw: raw}
	}
	threads := runtime.NumCPU()
	for _, c := range []struct {
		name string
		w    Weights
		opts Options
	}{
		{"fp32", w32, Options{Attention: ContribAttention}},
		{"fp32-fused", w32, Options{Attention: ContribAttention, FusedLinear: true}},
		{"fp16", w16, Options{Attention: StandardAttention, DType: onnx.Float16}},
	} {
		sg, err := BuildScoring(cfg, c.w, c.opts)
		if err != nil {
			b.Fatal(err)
		}
		ss := newTestSession(b, sg, threads)
		b.Run(c.name+"/scoring_b1_t128", func(b *testing.B) {
			ref := &reference{InputIDs: benchIDs(1, 128), AttentionMask: ones(1, 128)}
			var m meter
			for i := 0; i < b.N; i++ {
				m.begin()
				score(b, ss, ref)
				m.end()
			}
			m.report(b, 128*b.N)
		})
	}
}
