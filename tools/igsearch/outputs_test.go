package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file reproduce the failures of the bad-input probe
// (issue 17): an --out that deletes a user's files, settings checked only
// after output was written, and silent results. Each ran against the CLI
// before the fix and failed the way its comment says.

// captureErr runs `igsearch ARGS...` and returns its exit code and stderr.
func captureErr(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		done <- b.String()
	}()
	code := run(args)
	w.Close()
	os.Stderr = old
	return code, <-done
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

// Before: `trainer step --out MODEL` replaced the model folder whole and
// exited 0; tokenizer.json and README.md were gone.
func TestTrainerStepKeepsUsersFiles(t *testing.T) {
	const fixture = "../../testdata/models/tiny-qwen2"
	model := copyTestModel(t, fixture, "config.json", "model.safetensors")
	os.WriteFile(filepath.Join(model, "README.md"), []byte("my notes\n"), 0o644)
	before := mustRead(t, filepath.Join(model, "model.safetensors"))
	batch := fixture + "/grpo-step/grpo_step.json"
	code, stderr := captureErr(t, "trainer", "step", "--model", model, "--batch", batch, "--out", model, "--force")
	if code != 1 || !strings.Contains(stderr, "README.md") || !strings.Contains(stderr, "refusing") {
		t.Fatalf("--out = --model: exit %d, stderr %q; want 1 and a refusal naming README.md", code, stderr)
	}
	if mustRead(t, filepath.Join(model, "README.md")) != "my notes\n" || mustRead(t, filepath.Join(model, "model.safetensors")) != before {
		t.Fatal("the model folder changed")
	}

	// A checkpoint from an earlier step is replaced only with --force.
	out := filepath.Join(t.TempDir(), "step")
	if code, stderr := captureErr(t, "trainer", "step", "--model", fixture, "--batch", batch, "--out", out); code != 0 {
		t.Fatalf("first step: exit %d: %s", code, stderr)
	}
	code, stderr = captureErr(t, "trainer", "step", "--model", fixture, "--batch", batch, "--out", out)
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("second step without --force: exit %d, stderr %q", code, stderr)
	}
	if code, stderr := captureErr(t, "trainer", "step", "--model", fixture, "--batch", batch, "--out", out, "--force"); code != 0 {
		t.Fatalf("second step with --force: exit %d: %s", code, stderr)
	}
}

// Before: `trainer step` accepted lr −1 (and NaN) and wrote the checkpoint.
func TestTrainerStepRejectsBadSettingsBeforeWriting(t *testing.T) {
	const fixture = "../../testdata/models/tiny-qwen2"
	var step map[string]any
	if err := json.Unmarshal([]byte(mustRead(t, fixture+"/grpo-step/grpo_step.json")), &step); err != nil {
		t.Fatal(err)
	}
	step["lr"] = -1
	step["weight_decay"] = -0.5
	dir := t.TempDir()
	batch := filepath.Join(dir, "batch.json")
	b, _ := json.Marshal(step)
	os.WriteFile(batch, b, 0o644)
	out := filepath.Join(dir, "out")
	code, stderr := captureErr(t, "trainer", "step", "--model", fixture, "--batch", batch, "--out", out)
	if code != 1 || !strings.Contains(stderr, "lr -1") || !strings.Contains(stderr, "weight_decay -0.5") {
		t.Fatalf("exit %d, stderr %q; want 1 naming lr -1 and weight_decay -0.5", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("--out was created (%v)", err)
	}
}

// Before: `train` with ig_norm "clip:abc", temperature −1 and lr NaN created
// --out and failed only at iteration 0, naming one of them.
func TestTrainValidatesEverySettingFirst(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	code, stderr := captureErr(t, "train", "--model", dir, "--train", filepath.Join(dir, "q.jsonl"), "--index", dir,
		"--out", out, "--ig-norm", "clip:abc", "--temperature", "-1", "--lr", "NaN")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (usage)", code)
	}
	for _, want := range []string{"ig.ig_norm", "clip:abc", "rollout.temperature", "is -1", "optim.lr", "NaN"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("--out was created (%v)", err)
	}
}

// Before: re-running `train` into an existing run without --resume emptied
// its metrics.jsonl (even when the new run failed at once) and left its
// rollouts mixed with the new run's.
func TestTrainKeepsAnEarlierRun(t *testing.T) {
	s := newAgentSetup(t)
	out := filepath.Join(t.TempDir(), "run")
	os.MkdirAll(filepath.Join(out, "rollouts"), 0o755)
	old := `{"iter":0,"reward":0.5}` + "\n"
	os.WriteFile(filepath.Join(out, "metrics.jsonl"), []byte(old), 0o644)
	os.WriteFile(filepath.Join(out, "rollouts", "iter-00007.jsonl"), []byte("{}\n"), 0o644)
	args := []string{"train", "--model", s.modelDir, "--train", filepath.Join(s.worldDir, "train.jsonl"),
		"--index", s.indexDir, "--out", out, "--chat=false", "--iterations", "1", "--questions", "2",
		"--group-size", "2", "--max-turns", "1", "--max-new-tokens", "4", "--eval-every", "0", "--kl-beta", "0"}
	code, stderr := captureErr(t, args...)
	if code != 1 || !strings.Contains(stderr, "--overwrite") || !strings.Contains(stderr, "--resume") {
		t.Fatalf("exit %d, stderr %q; want 1 and a refusal naming --overwrite and --resume", code, stderr)
	}
	if mustRead(t, filepath.Join(out, "metrics.jsonl")) != old {
		t.Fatal("the earlier run's metrics.jsonl changed")
	}

	// A folder with a file a run does not write is refused even with --overwrite.
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	code, stderr = captureErr(t, append(args, "--overwrite")...)
	if code != 1 || !strings.Contains(stderr, "notes.txt") {
		t.Fatalf("foreign file: exit %d, stderr %q", code, stderr)
	}
	os.Remove(filepath.Join(out, "notes.txt"))

	// --overwrite starts again: the old run's files do not mix with the new.
	if code, stderr := captureErr(t, append(args, "--overwrite")...); code != 0 {
		t.Fatalf("--overwrite: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "rollouts", "iter-00007.jsonl")); !os.IsNotExist(err) {
		t.Error("the earlier run's rollouts/iter-00007.jsonl is still there")
	}
	if got := mustRead(t, filepath.Join(out, "metrics.jsonl")); got == old || strings.Count(got, "\n") != 1 {
		t.Errorf("metrics.jsonl after --overwrite: %q", got)
	}
}
