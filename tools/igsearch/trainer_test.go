package main

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/trainer"
)

// TestTrainerStepCLI runs `igsearch trainer step` on the PyTorch GRPO fixture
// and compares the written checkpoint with the reference weights after the
// step, with and without micro-batching.
func TestTrainerStepCLI(t *testing.T) {
	const fixture = "../../testdata/models/tiny-qwen2"
	ref, err := safetensors.Open(fixture + "/grpo-step/after_step.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, micro := range []string{"0", "1", "tokens"} {
		out := filepath.Join(t.TempDir(), "step")
		args := []string{"trainer", "step", "--model", fixture, "--batch", fixture + "/grpo-step/grpo_step.json", "--out", out, "--micro-batch", micro}
		if micro == "tokens" { // token-budget micro-batches with recomputation
			args = append(args[:len(args)-2], "--micro-batch-tokens", "30", "--recompute")
		}
		code := run(args)
		if code != 0 {
			t.Fatalf("trainer step --micro-batch %s: exit %d", micro, code)
		}
		got, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range ref.Tensors() {
			_, want, err := ref.Float32s(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			_, have, err := got.Float32s(info.Name)
			if err != nil {
				t.Fatalf("written checkpoint: %v", err)
			}
			for i := range want {
				if d := math.Abs(float64(have[i] - want[i])); d > 2e-4 {
					t.Fatalf("--micro-batch %s: %s[%d] = %v, reference %v", micro, info.Name, i, have[i], want[i])
				}
			}
		}
		got.Close()
	}
	if code := run([]string{"trainer", "step", "--model", fixture, "--out", t.TempDir()}); code != 2 {
		t.Errorf("missing --batch: exit %d, want 2", code)
	}
	if code := run([]string{"trainer", "step", "--model", fixture, "--batch", fixture + "/grpo-step/grpo_step.json", "--out", filepath.Join(t.TempDir(), "x"), "--lora-alpha", "8"}); code != 2 {
		t.Errorf("--lora-alpha without --lora-rank: exit %d, want 2", code)
	}
}

// TestTrainerStepLoRACLI runs a LoRA step from the command line: the output
// holds the base model unchanged and PEFT's adapter files with the flags'
// rank, alpha and targets, and the step moved the B matrices off zero.
func TestTrainerStepLoRACLI(t *testing.T) {
	const fixture = "../../testdata/models/tiny-qwen2"
	out := filepath.Join(t.TempDir(), "lora")
	code := run([]string{"trainer", "step", "--model", fixture, "--batch", fixture + "/grpo-step/grpo_step.json", "--out", out,
		"--lora-rank", "4", "--lora-alpha", "16", "--lora-targets", "q_proj,down_proj"})
	if code != 0 {
		t.Fatalf("trainer step --lora-rank 4: exit %d", code)
	}
	base, err := safetensors.Open(fixture + "/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	got, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, info := range base.Tensors() {
		_, want, _ := base.Float32s(info.Name)
		_, have, err := got.Float32s(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(have, want) {
			t.Errorf("base weight %s changed", info.Name)
		}
	}
	lc, err := trainer.ReadLoRAConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if lc.Rank != 4 || lc.Alpha != 16 || !slices.Equal(lc.Targets, []string{"q_proj", "down_proj"}) {
		t.Errorf("adapter_config: r=%d alpha=%g targets %v, want 4, 16, [q_proj down_proj]", lc.Rank, lc.Alpha, lc.Targets)
	}
	ad, err := safetensors.Open(filepath.Join(out, trainer.LoRAWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	if n := len(ad.Tensors()); n != 2*2*2 { // 2 layers × 2 targets × (A, B)
		t.Errorf("%d adapter tensors, want 8", n)
	}
	_, b, err := ad.Float32s("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Max(b) == 0 && slices.Min(b) == 0 {
		t.Error("lora_B of layer 0 down_proj is still zero after a step")
	}
}
