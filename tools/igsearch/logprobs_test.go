package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
)

// copyTestModel copies a test model's files into a temporary directory, so
// that its graph cache is not written into testdata.
func copyTestModel(t *testing.T, from string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		in, err := os.Open(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLogprobsStage runs igsearch logprobs on tiny-qwen2-tied-fullvocab's
// reference rows (unpadded) and compares with next_token_logprobs.
func TestLogprobsStage(t *testing.T) {
	if _, err := ort.FindLibrary("", false); errors.Is(err, ort.ErrNoLibrary) {
		t.Skip(err)
	}
	const src = "../../testdata/models/tiny-qwen2-tied-fullvocab"
	model := copyTestModel(t, src, "config.json", "model.safetensors")
	b, err := os.ReadFile(filepath.Join(src, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		InputIDs          [][]int64   `json:"input_ids"`
		AttentionMask     [][]int64   `json:"attention_mask"`
		NextTokenLogprobs [][]float64 `json:"next_token_logprobs"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var rows strings.Builder
	var pads []int
	for i, ids := range ref.InputIDs {
		var real []int64
		for j, id := range ids {
			if ref.AttentionMask[i][j] == 1 {
				real = append(real, id)
			}
		}
		pads = append(pads, len(ids)-len(real))
		line, _ := json.Marshal(map[string]any{"input_ids": real})
		rows.Write(line)
		rows.WriteString("\n")
	}
	if err := os.WriteFile(in, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	if err := runLogprobs([]string{"--model", model, "--in", in, "--out", out, "--threads", "2"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	worst, n := 0.0, 0
	for i := 0; sc.Scan(); i++ {
		var row struct {
			Logprobs []float64 `json:"logprobs"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("output line %d: %v", i+1, err)
		}
		want := ref.NextTokenLogprobs[i][pads[i]:]
		if len(row.Logprobs) != len(want) {
			t.Fatalf("row %d: %d log-probs, want %d", i, len(row.Logprobs), len(want))
		}
		for j := range want {
			worst = max(worst, math.Abs(row.Logprobs[j]-want[j]))
		}
		n++
	}
	if n != len(ref.InputIDs) {
		t.Fatalf("%d output rows, want %d", n, len(ref.InputIDs))
	}
	t.Logf("igsearch logprobs vs next_token_logprobs: max abs diff %.2e", worst)
	if worst > 1e-4 {
		t.Errorf("max abs diff %.2e > 1e-4", worst)
	}

	// Malformed input: an error naming the line, and no output file.
	for i, bad := range []string{`{"input_ids": [1, 2, 3]}` + "\n" + `{"input_ids": [1, 2,}`, "{\"input_ids\": [1]}\n\n{\"ids\": [4]}", `{"input_ids": [1, 999999]}`} {
		if err := os.WriteFile(in, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		badOut := filepath.Join(dir, fmt.Sprintf("bad%d.jsonl", i))
		err := runLogprobs([]string{"--model", model, "--in", in, "--out", badOut})
		wantLine := []string{"in.jsonl:2:", "in.jsonl:3:", "in.jsonl:1:"}[i]
		if err == nil || !strings.Contains(err.Error(), wantLine) {
			t.Errorf("bad input %d: error %v, want one naming %s", i, err, wantLine)
		}
		if _, err := os.Stat(badOut); err == nil {
			t.Errorf("bad input %d: output written", i)
		}
	}
}
