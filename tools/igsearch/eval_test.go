package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/pipeline/world/worldtest"
)

// capture runs `igsearch ARGS...` and returns its exit code and stdout.
func capture(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var code int
	out := captureFile(t, &os.Stdout, func() { code = run(args) })
	return code, out
}

// captureErr runs `igsearch ARGS...` and returns its exit code and stderr.
func captureErr(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var code int
	out := captureFile(t, &os.Stderr, func() { code = run(args) })
	return code, out
}

// captureFile runs f with *target (os.Stdout or os.Stderr) redirected to a
// pipe and returns what f wrote there.
func captureFile(t *testing.T, target **os.File, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := *target
	*target = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	f()
	w.Close()
	*target = old
	return <-done
}

// agentSetup is a small world, its index, and a random tiny Qwen2 over the
// world's WordLevel vocabulary with the world's tokenizer.json.
type agentSetup struct {
	world                        *world.World
	worldDir, indexDir, modelDir string
}

var (
	agentOnce sync.Once
	agentVal  agentSetup
	agentErr  error
)

func newAgentSetup(t *testing.T) agentSetup {
	t.Helper()
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.CPU); err != nil {
		t.Skipf("%v (run `make setup`)", err)
	}
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "igsearch-agent-test")
		if err != nil {
			agentErr = err
			return
		}
		f, err := worldtest.New(dir, worldtest.Questions{Train: 8, Dev: 4, Test: 6})
		if err != nil {
			agentErr = err
			return
		}
		s := agentSetup{world: f.World, worldDir: f.WorldDir, indexDir: f.IndexDir}
		mc := f.ModelConfig()
		mc.InitializerRange = 0.3 // random, but with log-probs that depend on the context
		if s.modelDir, agentErr = f.SaveModel("model", mc, qwen2.Init(mc, 3)); agentErr != nil {
			return
		}
		agentVal = s
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentVal
}

// TestEvalStage runs igsearch eval on the world's test questions.
func TestEvalStage(t *testing.T) {
	s := newAgentSetup(t)
	tmp := t.TempDir()
	// Two data sources, so that the table has two rows and an average.
	var b strings.Builder
	for i, q := range s.world.Test {
		src := "one"
		if i%2 == 1 {
			src = "two"
		}
		row, _ := json.Marshal(map[string]any{"id": q.ID, "question": q.Question, "golden_answers": q.GoldenAnswers, "data_source": src})
		b.Write(append(row, '\n'))
	}
	data := filepath.Join(tmp, "test.jsonl")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, recs := filepath.Join(tmp, "eval.json"), filepath.Join(tmp, "records.jsonl")
	code, stdout := capture(t, "eval", "--model", s.modelDir, "--index", s.indexDir, "--data", data,
		"--chat=false", "--max-new-tokens", "6", "--max-turns", "2", "--limit", "5", "--batch-size", "3",
		"--threads", "2", "--out", out, "--records", recs)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res evalResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if res.Overall.N != 5 || res.BySource["one"].N != 3 || res.BySource["two"].N != 2 {
		t.Errorf("result %+v, want 5 questions: 3 of one, 2 of two", res)
	}
	file, err := os.ReadFile(out)
	if err != nil || strings.TrimSpace(string(file)) != lines[len(lines)-1] {
		t.Errorf("--out holds %q (%v), stdout %q", file, err, lines[len(lines)-1])
	}
	f, err := os.Open(recs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
	}
	if n != 5 {
		t.Errorf("%d records, want 5", n)
	}
	// The table.
	var tbl strings.Builder
	res.Table(&tbl)
	if !strings.Contains(tbl.String(), "average") || strings.Count(tbl.String(), "\n") != 4 {
		t.Errorf("table:\n%s", tbl.String())
	}
	if code, _ := capture(t, "eval", "--model", s.modelDir, "--data", data); code != 2 {
		t.Errorf("eval without --index: exit %d, want 2", code)
	}
}
