package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/igsearch/igsearch/models/safetensors"
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
	for _, micro := range []string{"0", "1"} {
		out := filepath.Join(t.TempDir(), "step")
		code := run([]string{"trainer", "step", "--model", fixture, "--batch", fixture + "/grpo-step/grpo_step.json", "--out", out, "--micro-batch", micro})
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
}
