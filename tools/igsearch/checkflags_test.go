package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
)

// TestReportTransfers runs `logprobs --report-transfers` on three rows of
// 5 tokens, which the scoring graph takes in one run: its inputs are the
// ids and the mask, int64 [3,5] each (2·8·15 = 240 bytes to ONNX Runtime),
// its output the log-probs, float32 [3,4] (48 bytes back). The table's
// "score" row says exactly that; without the flag there is no table.
func TestReportTransfers(t *testing.T) {
	if _, err := ort.FindLibrary("", false); errors.Is(err, ort.ErrNoLibrary) {
		t.Skip(err)
	}
	model := copyTestModel(t, "../../testdata/models/tiny-qwen2-tied-fullvocab", "config.json", "model.safetensors")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	rows := `{"input_ids": [1, 2, 3, 4, 5]}
{"input_ids": [9, 8, 7, 6, 5]}
{"input_ids": [100, 200, 300, 400, 500]}
`
	if err := os.WriteFile(in, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"logprobs", "--model", model, "--in", in, "--out", filepath.Join(dir, "out.jsonl"), "--threads", "1"}
	code, stderr := captureErr(t, append(args, "--report-transfers")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("stderr:\n%s", stderr)
	table := map[string][]int64{}
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != "transfers" || f[1] == "phase" {
			continue
		}
		var v []int64
		for _, s := range f[2:] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			v = append(v, n)
		}
		table[f[1]] = v
	}
	want := []int64{1, 240, 48, 288} // runs, to, from, per run
	if got := table["score"]; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("score row %v, want %v", got, want)
	}
	if tot := table["total"]; len(tot) != 4 || tot[1] < want[1] || tot[2] < want[2] {
		t.Errorf("total row %v", tot)
	}
	code, stderr = captureErr(t, args...)
	if code != 0 || strings.Contains(stderr, "transfers") {
		t.Errorf("without --report-transfers: exit %d, stderr %q", code, stderr)
	}
}
