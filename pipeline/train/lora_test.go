package train

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/trainer"
)

// TestRunLoRA trains with LoRA adapters (with the KL reference on, per-layer
// recomputation and token-budget micro-batches), then resumes for one more
// iteration: the checkpoint keeps the initial model bit for bit beside
// PEFT's adapter files, and the resumed run continues the optimiser steps.
func TestRunLoRA(t *testing.T) {
	cfg, _, _ := tinySetup(t)
	cfg.Train.LoRARank, cfg.Train.LoRAAlpha, cfg.Train.LoRATargets = 4, 8, "q_proj, v_proj"
	cfg.Train.Recompute = true
	cfg.Train.MicroBatchTokens = 256
	cfg.Train.EvalEvery = 0
	cfg.Loss.KLBeta = 0.01
	sum, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck := sum.Checkpoint
	lc, err := trainer.ReadLoRAConfig(ck)
	if err != nil {
		t.Fatal(err)
	}
	if lc.Rank != 4 || lc.Alpha != 8 || !slices.Equal(lc.Targets, []string{"q_proj", "v_proj"}) {
		t.Errorf("adapter_config: r=%d alpha=%g targets %v", lc.Rank, lc.Alpha, lc.Targets)
	}
	base, err := safetensors.Open(filepath.Join(cfg.Model.Path, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	saved, err := safetensors.Open(filepath.Join(ck, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer saved.Close()
	for _, info := range base.Tensors() {
		_, want, _ := base.Float32s(info.Name)
		_, got, err := saved.Float32s(info.Name)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("base weight %s changed by LoRA training (err %v)", info.Name, err)
		}
	}
	// Iteration 0 takes one optimiser step, from B = 0: the policy is then
	// the base exactly, so the KL to the reference (the trainer's own base
	// log-probs) is float noise; a wrong reference would show here.
	first, err := os.ReadFile(filepath.Join(cfg.Train.Out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var m0 Metrics
	if err := json.Unmarshal([]byte(strings.SplitN(string(first), "\n", 2)[0]), &m0); err != nil {
		t.Fatal(err)
	}
	if m0.Step != 1 || math.Abs(m0.KL) > 1e-6 {
		t.Errorf("iteration 0: step %d, KL %g; want step 1 and KL ≈ 0 (adapters start at B = 0)", m0.Step, m0.KL)
	}
	steps := sum.Last.Step
	if steps < 1 {
		t.Fatalf("%d optimiser steps after 2 iterations", steps)
	}

	cfg.Train.Iterations, cfg.Train.Resume = 3, true
	sum, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if sum.Iterations != 3 || sum.Last.Step <= steps {
		t.Errorf("resumed to iteration %d, step %d; want 3 and more than %d", sum.Iterations, sum.Last.Step, steps)
	}
}

// TestLoRAPolicySharesWeights checks the rollout policy of LoRA training:
// built over the trainer's host-weight block with the adapters in factored
// form (no copy of the base), it scores like a policy built from the
// merged weights W + s·B·A (a separate copy), with B random so that the
// adapters matter.
func TestLoRAPolicySharesWeights(t *testing.T) {
	cfg, _, _ := tinySetup(t)
	cfg.Train.LoRARank, cfg.Train.LoRATargets = 4, "q_proj,down_proj"
	tr, err := trainer.Open(cfg.Model.Path, trainerOptions(cfg, ort.CPU))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	for name, v := range tr.State().Params {
		if strings.Contains(name, "lora_B") {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.2)
			}
		}
	}
	env := &environment{cfg: cfg, device: ort.CPU}
	shared, err := env.policyFromWeights(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	merged, err := policy.FromWeights(tr.Config, tr.MergedWeights(), nil, env.policyOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	seqs := [][]int32{{1, 5, 9, 2, 7, 7, 3}, {4, 8, 15, 16, 23, 42 % int32(tr.Config.VocabSize)}}
	a, err := shared.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := merged.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	base, err := tr.BaseLogprobs(seqs)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0.0
	for i := range a {
		for j := range a[i] {
			if d := math.Abs(float64(a[i][j] - b[i][j])); d > 1e-4 {
				t.Errorf("sequence %d, token %d: shared-weights policy %.6f, merged weights %.6f", i, j, a[i][j], b[i][j])
			}
			moved = math.Max(moved, math.Abs(float64(a[i][j]-base[i][j])))
		}
	}
	if moved < 1e-3 {
		t.Errorf("the adapters moved no log-prob by more than %g: the test would not see them", moved)
	}
}
