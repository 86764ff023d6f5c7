package main

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/igscore"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
)

// loggedTrajectories are plain text trajectories {"id","prompt","response",
// "golden_answers"} with an extra field that must pass through: two with
// one search step, one with two, one without any.
func loggedTrajectories() []map[string]any {
	p := protocol.SearchR1()
	obs := func(title, text string) string {
		return p.Observation([]protocol.Doc{{Contents: title + "\n" + text}})
	}
	return []map[string]any{
		{"id": "a", "golden_answers": []string{"Beijing"}, "extra": 1, "prompt": rollout.PromptText(p, false, "where is Beijing"),
			"response": "<think> you lack some knowledge </think> <search> search engine </search>" + obs("Beijing", "you can search as many times") + "<answer> Beijing </answer>"},
		{"id": "b", "golden_answers": []string{"example"}, "extra": 2, "prompt": rollout.PromptText(p, false, "what is new"),
			"response": "<search> new information </search>" + obs("Question", "for example answer") + "<search> further </search>" + obs("Answer", "the given question") + "<answer> example </answer>"},
		{"id": "c", "golden_answers": []string{"search"}, "extra": 3, "prompt": rollout.PromptText(p, false, "what is reasoning"),
			"response": "<search> reasoning </search>" + obs("Search", "conduct reasoning inside think") + "<answer> search </answer>"},
		{"id": "d", "golden_answers": []string{"none"}, "extra": 4, "prompt": rollout.PromptText(p, false, "what"),
			"response": "<answer> none </answer>"},
	}
}

func writeJSONL(t *testing.T, path string, rows []map[string]any) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readRows(t *testing.T, path string) []map[string]json.RawMessage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]json.RawMessage
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var row map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		out = append(out, row)
	}
	return out
}

// TestScoreIGStage scores plain text trajectories with igsearch score-ig
// and checks the rows against the scorer called directly.
func TestScoreIGStage(t *testing.T) {
	s := newAgentSetup(t)
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "traj.jsonl"), filepath.Join(tmp, "scored.jsonl")
	rows := loggedTrajectories()
	writeJSONL(t, in, rows)
	if code, _ := capture(t, "score-ig", "--model", s.modelDir, "--in", in, "--out", out, "--threads", "2"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	got := readRows(t, out)
	if len(got) != len(rows) {
		t.Fatalf("%d rows, want %d", len(got), len(rows))
	}
	// The same batch through the scorer, with chunk 0's seed.
	pol, err := policy.Open(s.modelDir, policy.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	sc, err := igscore.New(pol, nil, nil, igscore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]trajectory.Record, len(rows))
	for i, r := range rows {
		b, _ := json.Marshal(r)
		if err := json.Unmarshal(b, &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	want, _, err := sc.Score(context.Background(), recs, train.IterationSeed(train.DefaultConfig().Train.Seed, 0))
	if err != nil {
		t.Fatal(err)
	}
	// Training's own scorer agrees on the same batch and seed, so score-ig
	// reproduces the IG of logged training rollouts.
	cfg := train.DefaultConfig()
	cfg.Model.Threads = 2
	trained, err := train.ScoreDir(context.Background(), cfg, s.modelDir, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range trained {
		if len(trained[i].Steps) != len(want[i].Steps) || math.Abs(trained[i].Mean-want[i].Mean) > 1e-4 {
			t.Errorf("record %d: training's scorer %+v, igscore %+v", i, trained[i], want[i])
		}
	}
	wantSteps := []int{1, 2, 1, 0}
	for i, row := range got {
		var steps []ig.StepIG
		var mean float64
		var extra int
		if err := json.Unmarshal(row["ig_steps"], &steps); err != nil {
			t.Fatalf("row %d ig_steps %s: %v", i, row["ig_steps"], err)
		}
		json.Unmarshal(row["ig_mean"], &mean)
		json.Unmarshal(row["extra"], &extra)
		if extra != i+1 {
			t.Errorf("row %d: extra field %s not passed through", i, row["extra"])
		}
		if len(steps) != wantSteps[i] || len(want[i].Steps) != wantSteps[i] {
			t.Fatalf("row %d: %d steps (scorer %d), want %d", i, len(steps), len(want[i].Steps), wantSteps[i])
		}
		for k, st := range steps {
			if math.Abs(st.IG-want[i].Steps[k].IG) > 1e-4 || math.Abs(st.LogpReal-want[i].Steps[k].LogpReal) > 1e-4 {
				t.Errorf("row %d step %d: %+v, scorer %+v", i, k, st, want[i].Steps[k])
			}
		}
		if math.Abs(mean-want[i].Mean) > 1e-4 {
			t.Errorf("row %d: ig_mean %v, scorer %v", i, mean, want[i].Mean)
		}
	}
	if want[0].Steps[0].IG == 0 {
		t.Error("IG 0 with another trajectory's observation as the counterfactual")
	}

	// Chunks of one: each trajectory's pool is its own steps, so a
	// one-step trajectory's counterfactual is its own observation: IG 0.
	if code, _ := capture(t, "score-ig", "--model", s.modelDir, "--in", in, "--out", out, "--batch-size", "1", "--prefix-sharing=false"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	got = readRows(t, out)
	var steps []struct{ IG float64 }
	json.Unmarshal(got[0]["ig_steps"], &steps)
	if len(steps) != 1 || math.Abs(steps[0].IG) > 1e-6 {
		t.Errorf("chunk of one: steps %+v, want one with IG 0", steps)
	}

	// Malformed input: an error naming the line, and no output written.
	bad := filepath.Join(tmp, "bad.jsonl")
	line, _ := json.Marshal(rows[0])
	if err := os.WriteFile(bad, []byte(string(line)+"\n{\"id\": \"x\", \"prompt\": \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badOut := filepath.Join(tmp, "bad-out.jsonl")
	if code, _ := capture(t, "score-ig", "--model", s.modelDir, "--in", bad, "--out", badOut); code != 1 {
		t.Errorf("malformed input: exit %d, want 1", code)
	}
	if _, err := os.Stat(badOut); !os.IsNotExist(err) {
		t.Errorf("malformed input: output written (%v)", err)
	}
	ctx := context.Background()
	f, _ := os.Open(bad)
	defer f.Close()
	_, err = scoreIGStream(ctx, sc, f, "bad.jsonl", badOut, 8, 1, scoreIGChecks{}, shardFlag{})
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl: line 2") {
		t.Errorf("malformed input: error %v, want one naming bad.jsonl: line 2", err)
	}
}
