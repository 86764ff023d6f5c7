package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/sysmem"
)

// The tests in this file reproduce the failures of the bad-input probe
// (issue 17): an --out that deletes a user's files, settings checked only
// after output was written, and silent results. Each ran against the CLI
// before the fix and failed the way its comment says.

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
		"--group-size", "2", "--max-turns", "1", "--max-turn-tokens", "4", "--eval-every", "0", "--kl-beta", "0"}
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

// Before: score-ig gave a row without "response" no steps, and a row whose
// golden answers are all empty an all-zero IG, both silently.
func TestScoreIGRejectsUnscorableRows(t *testing.T) {
	s := newAgentSetup(t)
	tmp := t.TempDir()
	rows := loggedTrajectories()[:3]
	noResponse := map[string]any{"id": "x", "golden_answers": []string{"Paris"}, "prompt": "where is Paris"}
	emptyGold := map[string]any{"id": "y", "golden_answers": []string{"", " "}, "prompt": rows[0]["prompt"], "response": rows[0]["response"]}
	for _, c := range []struct {
		bad  map[string]any
		says string
	}{{noResponse, `line 2: no "response"`}, {emptyGold, "line 2: every golden answer is empty"}} {
		in, out := filepath.Join(tmp, "in.jsonl"), filepath.Join(tmp, "out.jsonl")
		writeJSONL(t, in, []map[string]any{rows[0], c.bad, rows[1]})
		code, stderr := captureErr(t, "score-ig", "--model", s.modelDir, "--in", in, "--out", out)
		if code != 1 || !strings.Contains(stderr, c.says) || !strings.Contains(stderr, "--skip-bad") {
			t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, c.says)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("output written (%v)", err)
		}
	}
	// --skip-bad scores the others and counts the skipped rows.
	in, out := filepath.Join(tmp, "in.jsonl"), filepath.Join(tmp, "out.jsonl")
	writeJSONL(t, in, []map[string]any{rows[0], noResponse, rows[1], emptyGold, rows[2]})
	code, stderr := captureErr(t, "score-ig", "--model", s.modelDir, "--in", in, "--out", out, "--skip-bad")
	if code != 0 || !strings.Contains(stderr, "2 rows skipped (--skip-bad): lines 2, 4") {
		t.Fatalf("--skip-bad: exit %d, stderr %q", code, stderr)
	}
	got := readRows(t, out)
	if len(got) != 3 || string(got[2]["id"]) != `"c"` {
		t.Fatalf("--skip-bad wrote %d rows, want a, b, c", len(got))
	}
}

// nanModel copies the agent model with one NaN in a weight tensor.
func nanModel(t *testing.T, modelDir, tensor string, at int) string {
	t.Helper()
	dir := copyTestModel(t, modelDir, "config.json", "tokenizer.json")
	f, err := safetensors.Open(filepath.Join(modelDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []safetensors.Tensor
	found := false
	for _, info := range f.Tensors() {
		_, raw, err := f.Raw(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		data := append([]byte(nil), raw...)
		if info.Name == tensor {
			if info.DType != safetensors.F32 {
				t.Fatalf("%s is %s", tensor, info.DType)
			}
			binary.LittleEndian.PutUint32(data[4*at:], math.Float32bits(float32(math.NaN())))
			found = true
		}
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: data})
	}
	if !found {
		t.Fatalf("no tensor %s", tensor)
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Before: NaN weights made generate and score-ig fail with "json:
// unsupported value: NaN", naming neither the row nor the weights.
func TestNaNWeightsAreNamed(t *testing.T) {
	s := newAgentSetup(t)
	model := nanModel(t, s.modelDir, "model.norm.weight", 5)
	const source = "model.norm.weight[5] = NaN"
	tmp := t.TempDir()
	code, stderr := captureErr(t, "generate", "--model", model, "--prompt", "where is", "--max-new-tokens", "3", "--out", filepath.Join(tmp, "gen.jsonl"))
	if code != 1 || !strings.Contains(stderr, "prompt 0: log-prob of generated token 0 is NaN") || !strings.Contains(stderr, source) {
		t.Errorf("generate: exit %d, stderr %q", code, stderr)
	}
	in, out := filepath.Join(tmp, "in.jsonl"), filepath.Join(tmp, "out.jsonl")
	writeJSONL(t, in, loggedTrajectories()[:1])
	code, stderr = captureErr(t, "score-ig", "--model", model, "--in", in, "--out", out)
	if code != 1 || !strings.Contains(stderr, "line 1: step 0: logp_real is NaN") || !strings.Contains(stderr, source) {
		t.Errorf("score-ig: exit %d, stderr %q", code, stderr)
	}
}

// Before: `tokenize --decode` dropped ids outside the vocabulary silently.
func TestDecodeRejectsUnknownIDs(t *testing.T) {
	tok := os.Getenv("IGSEARCH_QWEN_TOKENIZER")
	if tok == "" {
		t.Skip("IGSEARCH_QWEN_TOKENIZER is not set (run `make setup`)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	// 9707 is "Hello" in Qwen2.5; the tokenizer has 151665 ids (0–151664).
	os.WriteFile(in, []byte(`{"ids": [9707]}`+"\n"+`{"ids": [9707, 151665, 11]}`+"\n"), 0o644)
	err := runTokenize([]string{"--tokenizer", tok, "--in", in, "--out", out, "--decode"})
	if err == nil || !strings.Contains(err.Error(), "line 2: ids[1] = 151665 is not in the tokenizer's vocabulary") {
		t.Fatalf("error %v, want one naming line 2, ids[1] = 151665", err)
	}
	os.WriteFile(in, []byte(`{"ids": [-1]}`+"\n"), 0o644)
	if err := runTokenize([]string{"--tokenizer", tok, "--in", in, "--out", out, "--decode"}); err == nil || !strings.Contains(err.Error(), "ids[0] = -1") {
		t.Fatalf("id -1: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output written (%v)", err)
	}
}

// Before: `model init` with a ~400 GB config died in the Go runtime
// ("fatal error: out of memory", a stack trace); now it is refused before
// anything is allocated. Also: an --out holding a user's files is refused.
func TestModelInitChecksMemoryAndOut(t *testing.T) {
	dir := t.TempDir()
	big := qwen2.TinyConfig()
	// 80 layers of hidden 8192, MLP 49152, vocabulary 152064: about 108G
	// parameters, 430 GB in float32.
	big.HiddenSize, big.IntermediateSize, big.NumHiddenLayers = 8192, 49152, 80
	big.NumAttentionHeads, big.NumKeyValueHeads, big.VocabSize = 64, 8, 152064
	need := initBytes(big, onnx.Float)
	if avail, ok := sysmem.Available(); !ok || avail >= need {
		t.Skipf("this machine has %d bytes available, %d needed", avail, need)
	}
	cfgPath := filepath.Join(dir, "big.json")
	if err := qwen2.WriteConfig(cfgPath, big); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "big")
	code, stderr := captureErr(t, "model", "init", "--config", cfgPath, "--out", out)
	if code != 1 || !strings.Contains(stderr, "need 4") || !strings.Contains(stderr, "GiB of memory") || !strings.Contains(stderr, "refusing to start") {
		t.Fatalf("exit %d, stderr %q; want 1 and a memory refusal", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("--out was created (%v)", err)
	}

	// A folder of other files is refused; a checkpoint only with --force.
	tiny := filepath.Join(dir, "tiny.json")
	qwen2.WriteConfig(tiny, qwen2.TinyConfig())
	user := filepath.Join(dir, "user")
	os.Mkdir(user, 0o755)
	os.WriteFile(filepath.Join(user, "notes.txt"), []byte("mine"), 0o644)
	if code, stderr := captureErr(t, "model", "init", "--config", tiny, "--out", user, "--force"); code != 1 || !strings.Contains(stderr, "notes.txt") {
		t.Fatalf("folder of other files: exit %d, stderr %q", code, stderr)
	}
	ck := filepath.Join(dir, "ck")
	if code, stderr := captureErr(t, "model", "init", "--config", tiny, "--out", ck); code != 0 {
		t.Fatalf("first init: exit %d: %s", code, stderr)
	}
	if code, stderr := captureErr(t, "model", "init", "--config", tiny, "--out", ck); code != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("second init without --force: exit %d, stderr %q", code, stderr)
	}
	if code, stderr := captureErr(t, "model", "init", "--config", tiny, "--out", ck, "--force", "--seed", "2"); code != 0 {
		t.Fatalf("second init with --force: exit %d: %s", code, stderr)
	}
}

// Before: `generate --top-p 0` was refused although the sampler takes 0 as
// "keep all", as 1; now both give the same tokens.
func TestGenerateTopPZeroKeepsAll(t *testing.T) {
	tok := os.Getenv("IGSEARCH_QWEN_TOKENIZER")
	if tok == "" {
		t.Skip("IGSEARCH_QWEN_TOKENIZER is not set (run `make setup`)")
	}
	const model = "../../testdata/models/tiny-qwen2-tied-fullvocab"
	gen := func(topP string) string {
		code, out := capture(t, "generate", "--model", model, "--tokenizer", tok, "--prompt", "hello world",
			"--temperature", "0.8", "--seed", "3", "--max-new-tokens", "8", "--top-p", topP)
		if code != 0 {
			t.Fatalf("--top-p %s: exit %d", topP, code)
		}
		return out
	}
	if a, b := gen("0"), gen("1"); a != b || a == "" {
		t.Fatalf("--top-p 0 gave %q, --top-p 1 %q", a, b)
	}
}

// A training state that cannot fit is refused before the checkpoint is
// read: here a ~108G-parameter config with no weights file at all.
func TestTrainerStepChecksMemoryFirst(t *testing.T) {
	big := qwen2.TinyConfig()
	big.HiddenSize, big.IntermediateSize, big.NumHiddenLayers = 8192, 49152, 80
	big.NumAttentionHeads, big.NumKeyValueHeads, big.VocabSize = 64, 8, 152064
	if avail, ok := sysmem.Available(); !ok || avail >= 16*uint64(qwen2.NumParams(big)) {
		t.Skip("this machine has the memory")
	}
	model := t.TempDir()
	if err := qwen2.WriteConfig(filepath.Join(model, "config.json"), big); err != nil {
		t.Fatal(err)
	}
	code, stderr := captureErr(t, "trainer", "step", "--model", model, "--batch", "../../testdata/models/tiny-qwen2/grpo-step/grpo_step.json",
		"--out", filepath.Join(t.TempDir(), "out"))
	if code != 1 || !strings.Contains(stderr, "full fine-tuning") || !strings.Contains(stderr, "refusing to start") {
		t.Fatalf("exit %d, stderr %q; want 1 and a memory refusal", code, stderr)
	}
}

// A stage reports every bad flag at once, before loading anything.
func TestUsageErrorsListEveryBadFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"score-ig", "--in", "x.jsonl", "--batch-size", "0", "--ig-random", "0", "--ig-gold", "worst"},
			[]string{"--model is required", "--out is required", "--batch-size must be positive, is 0", "--ig-random must be positive, is 0", `"worst"`}},
		{[]string{"eval", "--model", "m", "--group-size", "0", "--retrieval-topk", "0", "--protocol", "nope"},
			[]string{"--data is required", "--index or --retriever is required", "--group-size must be positive, is 0", "--retrieval-topk must be positive, is 0", "nope"}},
		{[]string{"generate", "--prompt", "hi", "--max-new-tokens", "0", "--temperature", "-1", "--top-p", "2"},
			[]string{"--max-new-tokens must be positive, is 0", "--temperature must be ≥ 0, is -1", "--top-p must be in [0, 1]", "--model is required"}},
	} {
		code, stderr := captureErr(t, c.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr does not name %q:\n%s", c.args, w, stderr)
			}
		}
	}
}
