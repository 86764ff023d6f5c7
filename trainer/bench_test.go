package trainer

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
)

// benchBatch is a GRPO batch of rows sequences of cols tokens for cfg: a
// 64-token prompt (odd rows left padded), a trained completion, log-probs
// near a random model's −ln V (the batch of tools/bench/trainbench).
func benchBatch(cfg qwen2.Config, rows, cols int, seed uint64) *Batch {
	rng := rand.New(rand.NewPCG(seed, 2))
	base := -math.Log(float64(cfg.VocabSize))
	b := &Batch{}
	for r := 0; r < rows; r++ {
		pad := 0
		if r%2 == 1 {
			pad = rng.IntN(32)
		}
		ids, mask := make([]int64, cols), make([]int64, cols)
		lm, adv, old, ref := make([]float32, cols-1), make([]float32, cols-1), make([]float32, cols-1), make([]float32, cols-1)
		a := float32(rng.NormFloat64())
		for i := range ids {
			if i >= pad {
				ids[i], mask[i] = int64(rng.IntN(cfg.VocabSize)), 1
			}
			if i < cols-1 {
				if i >= min(64, cols/4) {
					lm[i], adv[i] = 1, a
				}
				old[i] = float32(base + 0.05*rng.NormFloat64())
				ref[i] = float32(base + 0.05*rng.NormFloat64())
			}
		}
		b.InputIDs = append(b.InputIDs, ids)
		b.AttentionMask = append(b.AttentionMask, mask)
		b.LossMask = append(b.LossMask, lm)
		b.Advantages = append(b.Advantages, adv)
		b.OldLogprobs = append(b.OldLogprobs, old)
		b.RefLogprobs = append(b.RefLogprobs, ref)
	}
	return b
}

// BenchmarkGRPOStep times one GRPO train step on qwen2.TrainBenchConfig
// (issue 5's benchmark shape) and splits it into the gradient-graph runs and
// the optimiser-graph runs (grad_s, optim_s per step), with the bytes that
// cross the boundary per step (boundary_B, ort.MeteredTransfers) and the
// process's peak RSS. IGSEARCH_BENCH_B and IGSEARCH_BENCH_T override B=8,
// T=256. scripts/bench.d/50-trainer.sh runs the same step against PyTorch.
func BenchmarkGRPOStep(b *testing.B) {
	initORT(b)
	rows, cols := envInt("IGSEARCH_BENCH_B", 8), envInt("IGSEARCH_BENCH_T", 256)
	cfg := qwen2.TrainBenchConfig()
	tr, err := New(cfg, qwen2.Init(cfg, 1), Options{Artifact: ArtifactOptions{Loss: DefaultLossConfig()}, Optim: DefaultAdamW()})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	batch := benchBatch(cfg, rows, cols, 1)
	var gradS, optS float64
	before := ort.MeteredTransfers()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := tr.Step(batch)
		if err != nil {
			b.Fatal(err)
		}
		gradS += m.GradSeconds
		optS += m.OptimSeconds
	}
	b.StopTimer()
	crossed := ort.MeteredTransfers().Sub(before).Total().Bytes()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(gradS/float64(b.N), "grad_s")
	b.ReportMetric(optS/float64(b.N), "optim_s")
	b.ReportMetric(float64(crossed)/float64(b.N), "boundary_B")
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak_rss_MB")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
