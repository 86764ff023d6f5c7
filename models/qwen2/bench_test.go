package qwen2

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Benchmarks on the ~100M-parameter shape of issue 4 (Bench100MConfig, random
// weights), for both attention variants, through ONNX Runtime on CPU:
//
//	go test ./models/qwen2 -run '^$' -bench Qwen2 -benchtime 1x
//
// Each reports tokens/s: prefill of 128 tokens, 32 decode steps after a
// 32-token prompt (batch 1 and 16), and scoring 128 tokens per row.

var (
	benchOnce    sync.Once
	benchWeights Weights
)

func benchSetup(b *testing.B) (Config, Weights) {
	cfg := Bench100MConfig()
	benchOnce.Do(func() { benchWeights = Init(cfg, 1) })
	return cfg, benchWeights
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
			var el time.Duration
			for i := 0; i < b.N; i++ {
				gen := newGeneration(s, cfg, 1)
				start := time.Now()
				gen.step(b, benchIDs(1, 128), ones(1, 128), positions(1, 0, 128))
				el += time.Since(start)
			}
			b.ReportMetric(float64(128*b.N)/el.Seconds(), "tok/s")
		})
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/decode_b%d", attn, batch), func(b *testing.B) {
				var el time.Duration
				for i := 0; i < b.N; i++ {
					gen := newGeneration(s, cfg, batch)
					gen.step(b, benchIDs(batch, 32), ones(batch, 32), positions(batch, 0, 32))
					start := time.Now()
					for step := 0; step < 32; step++ {
						tok := make([]int64, batch)
						for r := range tok {
							tok[r] = int64(1000 + step + r)
						}
						gen.decodeStep(b, tok)
					}
					el += time.Since(start)
				}
				b.ReportMetric(float64(32*batch*b.N)/el.Seconds(), "tok/s")
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
				start := time.Now()
				for i := 0; i < b.N; i++ {
					score(b, ss, ref)
				}
				b.ReportMetric(float64(128*batch*b.N)/time.Since(start).Seconds(), "tok/s")
			})
		}
	}
}

// BenchmarkAttentionLongContext compares the two attention variants where
// attention matters: the bench shape with a 1024-token vocabulary (so that
// the lm_head does not dominate), 2048-token contexts.
//
//	go test ./models/qwen2 -run '^$' -bench AttentionLongContext -benchtime 2x
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
			start := time.Now()
			for i := 0; i < b.N; i++ {
				newGeneration(s, cfg, 1).step(b, benchIDs(1, ctx), ones(1, ctx), positions(1, 0, ctx))
			}
			b.ReportMetric(float64(ctx*b.N)/time.Since(start).Seconds(), "tok/s")
		})
		b.Run(fmt.Sprintf("%s/decode_b4_ctx%d", attn, ctx), func(b *testing.B) {
			gen := newGeneration(s, cfg, 4)
			gen.step(b, benchIDs(4, ctx), ones(4, ctx), positions(4, 0, ctx))
			start := time.Now()
			for i := 0; i < b.N; i++ {
				gen.decodeStep(b, []int64{1, 2, 3, 4})
			}
			b.ReportMetric(float64(4*b.N)/time.Since(start).Seconds(), "tok/s")
		})
	}
}
