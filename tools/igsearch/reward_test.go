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
