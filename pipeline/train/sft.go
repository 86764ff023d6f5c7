package train

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/trainer"
)

// Sequence is one supervised example: token ids and, per token, whether it
// is trained (the model's own text) or context (prompt, observations).
type Sequence struct {
	IDs   []int32
	Train []bool
}

// SFTConfig is a warm start by token cross-entropy.
type SFTConfig struct {
	Steps      int
	BatchSize  int // sequences per step
	MicroBatch int // sequences per gradient run (0: the whole batch)
	LR         float64
	Warmup     int
	Seed       uint64
	Session    ort.Options
}

// SFT trains a copy of w on data and returns the trainer holding the result
// (the caller saves or keeps using it) and the loss of every step. progress,
// when set, is called after each step.
func SFT(ctx context.Context, cfg qwen2.Config, w qwen2.Weights, data []Sequence, sc SFTConfig, progress func(step, total int, loss float64)) (*trainer.Trainer, []float64, error) {
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("sft: no sequences")
	}
	if sc.Steps < 1 || sc.BatchSize < 1 {
		return nil, nil, fmt.Errorf("sft: steps %d and batch size %d must be positive", sc.Steps, sc.BatchSize)
	}
	tr, err := trainer.New(cfg, w, trainer.Options{
		Artifact:   trainer.ArtifactOptions{Loss: trainer.LossConfig{Kind: trainer.LossSFT}},
		Optim:      trainer.AdamWConfig{LR: sc.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1},
		MicroBatch: sc.MicroBatch,
		Session:    sc.Session,
	})
	if err != nil {
		return nil, nil, err
	}
	rows := make([]trainRow, len(data))
	for i, s := range data {
		if len(s.IDs) != len(s.Train) {
			tr.Close()
			return nil, nil, fmt.Errorf("sft: sequence %d has %d ids and %d train flags", i, len(s.IDs), len(s.Train))
		}
		mask := make([]float32, len(s.IDs))
		for j, t := range s.Train {
			if t {
				mask[j] = 1
			}
		}
		zeros := make([]float32, len(s.IDs))
		rows[i] = trainRow{ids: s.IDs, lossMask: mask, advantages: zeros, oldLogp: zeros}
	}
	rng := rand.New(rand.NewPCG(sc.Seed, 0x5f7))
	order := rng.Perm(len(rows))
	pos := 0
	losses := make([]float64, 0, sc.Steps)
	opt := OptimConfig{LR: sc.LR, Warmup: sc.Warmup, Schedule: "cosine", MinLRRatio: 0.1}
	for step := 1; step <= sc.Steps; step++ {
		if err := ctx.Err(); err != nil {
			tr.Close()
			return nil, losses, err
		}
		part := make([]trainRow, 0, sc.BatchSize)
		for len(part) < sc.BatchSize {
			if pos == len(order) {
				order, pos = rng.Perm(len(rows)), 0
			}
			part = append(part, rows[order[pos]])
			pos++
		}
		b, err := assemble(part)
		if err != nil {
			tr.Close()
			return nil, losses, err
		}
		tr.SetLR(LearningRate(opt, step, sc.Steps))
		m, err := tr.Step(b)
		if err != nil {
			tr.Close()
			return nil, losses, fmt.Errorf("sft step %d: %w", step, err)
		}
		losses = append(losses, m.Loss)
		if progress != nil {
			progress(step, sc.Steps, m.Loss)
		}
	}
	return tr, losses, nil
}
