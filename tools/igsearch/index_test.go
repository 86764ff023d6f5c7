package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureIndex runs `igsearch index ARGS...` and returns its exit code and stdout.
func captureIndex(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return capture(t, append([]string{"index"}, args...)...)
}

func TestIndexStageCLI(t *testing.T) {
	tmp := t.TempDir()
	corpus := filepath.Join(tmp, "c.jsonl")
	os.WriteFile(corpus, []byte(`{"id": "p1", "contents": "\"Paris\"\nParis is the capital of France."}
{"id": "p2", "title": "Rome", "text": "Rome is the capital of Italy."}
oops
{"id": "p3", "title": "Cats", "text": "Cats are small furry animals."}
`), 0o644)
	ix := filepath.Join(tmp, "ix")
	if code, _ := captureIndex(t, "build", "--corpus", corpus, "--out", ix); code != 1 {
		t.Fatalf("bad line: exit %d, want 1", code)
	}
	if code, _ := captureIndex(t, "build", "--corpus", corpus, "--out", ix, "--skip-bad", "--workers", "2"); code != 0 {
		t.Fatalf("build --skip-bad: exit %d", code)
	}
	code, out := captureIndex(t, "search", "--index", ix, "--k", "2", "--query", "capital of Italy")
	if code != 0 || !strings.HasPrefix(out, `{"id":"q1","hits":[{"doc":"p2",`) || !strings.Contains(out, `"contents":"\"Rome\"\nRome is the capital of Italy."`) {
		t.Errorf("search: %d %s", code, out)
	}
	qf := filepath.Join(tmp, "q.jsonl")
	os.WriteFile(qf, []byte(`{"id": "a", "query": "furry cats"}`+"\n"+`{"id": 7, "query": "capital"}`+"\n"), 0o644)
	code, out = captureIndex(t, "search", "--index", ix, "--k", "2", "--queries", qf, "--format", "trec")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "a Q0 p3 1 ") || !strings.HasSuffix(lines[0], " igsearch") || !strings.HasPrefix(lines[1], "7 Q0 p") {
		t.Errorf("trec: %d %q", code, lines)
	}
	if f := strings.Fields(lines[0]); len(f) != 6 || len(f[4]) < 8 || f[4][len(f[4])-7] != '.' {
		t.Errorf("trec score not to 6 decimals: %q", lines[0])
	}
	code, out = captureIndex(t, "stats", "--index", ix)
	if code != 0 || !strings.Contains(out, "passages         3") || !strings.Contains(out, "postings.bin") {
		t.Errorf("stats: %d %s", code, out)
	}
	syn := filepath.Join(tmp, "s.jsonl.gz")
	if code, _ := captureIndex(t, "synth", "--docs", "20", "--out", syn); code != 0 {
		t.Fatalf("synth: exit %d", code)
	}
	if code, _ := captureIndex(t, "build", "--corpus", syn, "--out", filepath.Join(tmp, "ix2"), "--analyzer", "simple"); code != 0 {
		t.Errorf("build from synth: exit %d", code)
	}
	if code, _ := captureIndex(t, "search", "--index", ix); code != 2 {
		t.Errorf("search without a query: exit %d, want 2", code)
	}
}
