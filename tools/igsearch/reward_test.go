package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestRewardStageMatchesQAEM runs `igsearch reward` over the 369 parity
// cases and compares every reward with what Search-R1's qa_em.py gave
// (compute_score_em / compute_score_subem, pipeline/reward/testdata).
func TestRewardStageMatchesQAEM(t *testing.T) {
	dir := t.TempDir()
	cases := filepath.Join("..", "..", "pipeline", "reward", "testdata", "qa_em_cases.jsonl")
	golden := readRewardRows(t, filepath.Join("..", "..", "pipeline", "reward", "testdata", "qa_em_golden.jsonl"))
	for _, m := range []string{"em", "subem"} {
		out := filepath.Join(dir, m+".jsonl")
		if code, _ := capture(t, "reward", "--in", cases, "--out", out, "--metric", m); code != 0 {
			t.Fatalf("reward --metric %s: exit %d", m, code)
		}
		got := readRewardRows(t, out)
		if len(got) != len(golden) {
			t.Fatalf("%s: %d rows, want %d", m, len(got), len(golden))
		}
		for i := range got {
			if got[i][m] != nil {
				t.Fatalf("row %d has a %q field", i+1, m)
			}
			if got[i]["reward"] != golden[i][m] || (got[i]["answer"] == nil) != (golden[i]["answer"] == nil) ||
				(got[i]["answer"] != nil && got[i]["answer"] != golden[i]["answer"]) {
				t.Errorf("%s row %d: answer %q reward %v; qa_em.py %q %v", m, i+1, got[i]["answer"], got[i]["reward"], golden[i]["answer"], golden[i][m])
			}
		}
	}
}

// TestRewardStageFormatReward: --format-reward gives what training's
// reward gives; the values are worked by hand from qa_em_format.py (see
// pipeline/reward's TestOutcomeFormat): a well-formed wrong answer 0.2, a
// malformed right one 1 − 0.2, a malformed wrong one 0.1.
func TestRewardStageFormatReward(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "rows.jsonl"), filepath.Join(dir, "out.jsonl")
	os.WriteFile(in, []byte(`{"response":"<think>x</think><answer>Lyon</answer>","golden_answers":["Paris"]}
{"response":"<answer>Paris</answer>","golden_answers":["Paris"]}
{"response":"<think>x</think> junk <answer>Lyon</answer>","golden_answers":["Paris"]}
`), 0o644)
	if code, _ := capture(t, "reward", "--in", in, "--out", out, "--format-reward"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows := readRewardRows(t, out)
	for i, want := range []float64{0.2, 0.8, 0.1} {
		if got, _ := rows[i]["reward"].(float64); got < want-1e-12 || got > want+1e-12 {
			t.Errorf("row %d: reward %v, want %v", i+1, rows[i]["reward"], want)
		}
	}
	if code, _ := capture(t, "reward", "--in", in, "--out", out, "--protocol", "nope"); code != 2 {
		t.Errorf("--protocol nope: exit %d, want 2", code)
	}
}

func TestRewardStageErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(in, []byte(`{"id":1,"response":"<answer>a</answer>","golden_answers":["a"]}`+"\n"+`{"id":2,"response":"x","golden_answers":[]}`+"\n"), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	if code, _ := capture(t, "reward", "--in", in, "--out", out); code != 1 {
		t.Errorf("empty golden answers: exit %d, want 1", code)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s: %v", out, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a failed run left temporaries: %v", entries)
	}
	if code, _ := capture(t, "reward", "--in", in, "--out", out, "--metric", "bleu"); code != 2 {
		t.Errorf("--metric bleu: exit %d, want 2", code)
	}
	if code, _ := capture(t, "reward", "--in", in); code != 2 {
		t.Errorf("no --out: exit %d, want 2", code)
	}
}

func readRewardRows(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, m)
	}
	return rows
}
