package trainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
)

// TestResumeIsExact checks that save + resume continues bit for bit: two
// steps in one run equal one step, a save, a resume in a new trainer, and a
// second step.
func TestResumeIsExact(t *testing.T) {
	ck, f := loadFixture(t)
	loss, opt := f.Configs()
	opts := Options{Artifact: ArtifactOptions{Loss: loss}, Optim: opt}

	straight, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer straight.Close()
	for i := 0; i < 2; i++ {
		if _, err := straight.Step(f.Batch()); err != nil {
			t.Fatal(err)
		}
	}

	first, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Step(f.Batch()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := first.Save(dir, []byte(`{"rng":42}`)); err != nil {
		t.Fatal(err)
	}
	first.Close()
	for _, name := range []string{"config.json", "model.safetensors", OptimizerFile, StateFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("checkpoint lacks %s: %v", name, err)
		}
	}
	resumed, extra, err := Resume(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	var compact bytes.Buffer
	if err := json.Compact(&compact, extra); err != nil || compact.String() != `{"rng":42}` {
		t.Errorf("extra state %s, want {\"rng\":42}", extra)
	}
	if resumed.State().Step != 1 {
		t.Fatalf("resumed at step %d, want 1", resumed.State().Step)
	}
	if _, err := resumed.Step(f.Batch()); err != nil {
		t.Fatal(err)
	}
	for name, want := range straight.State().Params {
		got := resumed.State().Params[name]
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s[%d]: resumed %v, uninterrupted %v", name, i, got[i], want[i])
			}
		}
	}
	for name, want := range straight.State().V {
		got := resumed.State().V[name]
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("exp_avg_sq %s[%d]: resumed %v, uninterrupted %v", name, i, got[i], want[i])
			}
		}
	}
}

// TestResumeBadOptimizerState: a missing or corrupt optimizer file is a clear
// error naming the file, never a silent fresh start.
func TestResumeBadOptimizerState(t *testing.T) {
	ck, f := loadFixture(t)
	loss, opt := f.Configs()
	opts := Options{Artifact: ArtifactOptions{Loss: loss}, Optim: opt}
	tr, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := tr.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	optPath := filepath.Join(dir, OptimizerFile)
	data, err := os.ReadFile(optPath)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(optPath, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = Resume(dir, opts)
	if err == nil || !strings.Contains(err.Error(), OptimizerFile) {
		t.Fatalf("truncated optimizer state: err = %v, want an error naming %s", err, OptimizerFile)
	}

	os.Remove(optPath)
	_, _, err = Resume(dir, opts)
	if !errors.Is(err, ErrNoOptimizerState) {
		t.Fatalf("missing optimizer state: err = %v, want ErrNoOptimizerState", err)
	}

	os.WriteFile(optPath, data, 0o644)
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"step": 3}`), 0o644)
	_, _, err = Resume(dir, opts)
	if err == nil || !strings.Contains(err.Error(), "step") {
		t.Fatalf("step mismatch: err = %v, want an error about the step", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestSFTOverfits drives the SFT loss on a small fixed data set near zero: a
// whole-system check of forward, gradients and optimiser.
func TestSFTOverfits(t *testing.T) {
	initORT(t)
	cfg := qwen2.TinyConfig()
	w := qwen2.Init(cfg, 7)
	opts := Options{
		Artifact: ArtifactOptions{Loss: LossConfig{Kind: LossSFT}},
		Optim:    AdamWConfig{LR: 3e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1},
	}
	tr, err := New(cfg, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Four sequences of 12 tokens, the second left padded by 3.
	b := &Batch{}
	for r := 0; r < 4; r++ {
		ids := make([]int64, 12)
		mask := make([]int64, 12)
		lm := make([]float32, 11)
		for i := range ids {
			ids[i] = int64((r*37 + i*i*11 + 5) % cfg.VocabSize)
			mask[i] = 1
			if r == 1 && i < 3 {
				ids[i], mask[i] = 0, 0
			}
			if i > 0 && mask[i] == 1 && mask[i-1] == 1 {
				lm[i-1] = 1
			}
		}
		b.InputIDs = append(b.InputIDs, ids)
		b.AttentionMask = append(b.AttentionMask, mask)
		b.LossMask = append(b.LossMask, lm)
	}
	var first, last Metrics
	for step := 0; step < 300; step++ {
		m, err := tr.Step(b)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = m
		}
		last = m
	}
	t.Logf("SFT loss %.4f → %.5f after %d steps", first.Loss, last.Loss, last.Step)
	if last.Loss > 0.05 || last.Loss > first.Loss/50 {
		t.Fatalf("SFT did not overfit: loss %.4f → %.4f", first.Loss, last.Loss)
	}
}
