package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalPerSource: a merged test file lists its sets one after the
// other; --per-source 2 evaluates two questions of each set, where --limit
// would take the first set's only, and --max-context-tokens bounds every
// trajectory.
func TestEvalPerSource(t *testing.T) {
	s := newAgentSetup(t)
	tmp := t.TempDir()
	var b strings.Builder
	sources := []string{"nq", "nq", "nq", "nq", "triviaqa", "triviaqa", "triviaqa", "bamboogle"}
	for i, src := range sources {
		q := s.world.Test[i%len(s.world.Test)]
		row, _ := json.Marshal(map[string]any{"id": fmt.Sprint(i), "question": q.Question, "golden_answers": q.GoldenAnswers, "data_source": src})
		b.Write(append(row, '\n'))
	}
	data := filepath.Join(tmp, "test.jsonl")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	recs := filepath.Join(tmp, "records.jsonl")
	code, stdout := capture(t, "eval", "--model", s.modelDir, "--index", s.indexDir, "--data", data,
		"--chat=false", "--max-turn-tokens", "6", "--max-turns", "2", "--per-source", "2", "--batch-size", "3",
		"--max-context-tokens", "120", "--threads", "2", "--records", recs)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res evalResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	want := map[string]int{"nq": 2, "triviaqa": 2, "bamboogle": 1}
	for src, n := range want {
		if res.BySource[src].N != n {
			t.Errorf("%s: %+v, want %d questions", src, res.BySource[src], n)
		}
	}
	if res.Overall.N != 5 {
		t.Errorf("overall n %d, want 5", res.Overall.N)
	}
	data2, err := os.ReadFile(recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data2)), "\n") {
		var r struct {
			TokenIDs []int32 `json:"token_ids"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.TokenIDs) > 120 {
			t.Errorf("a trajectory of %d tokens over --max-context-tokens 120", len(r.TokenIDs))
		}
	}
}
