package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/index"
)

func TestShardFlag(t *testing.T) {
	for _, bad := range []string{"", "1", "3/3", "-1/2", "a/2", "0/0", "1/2/3"} {
		var s shardFlag
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted: %+v", bad, s)
		}
	}
	var s shardFlag
	if !s.owns(7) || s.sharded() {
		t.Error("the zero value must own every chunk")
	}
	if err := s.Set("1/3"); err != nil || s.String() != "1/3" {
		t.Fatalf("Set(1/3): %v %q", err, s.String())
	}
	var got []int
	for k := 0; k < 8; k++ {
		if s.owns(k) {
			got = append(got, k)
		}
	}
	if fmt.Sprint(got) != "[1 4 7]" {
		t.Errorf("1/3 owns %v, want [1 4 7]", got)
	}
}

// splitRows is a hand-made sharding of rows into n parts by chunks of block.
func splitRows(rows []string, n, block int) []string {
	parts := make([]string, n)
	for r, row := range rows {
		parts[(r/block)%n] += row + "\n"
	}
	return parts
}

func TestMergeParts(t *testing.T) {
	var rows []string
	for i := 0; i < 11; i++ {
		rows = append(rows, fmt.Sprintf(`{"row":%d}`, i))
	}
	want := strings.Join(rows, "\n") + "\n"
	for _, c := range []struct{ n, block int }{{3, 2}, {3, 1}, {2, 4}, {5, 3}, {4, 11}, {3, 20}} {
		parts := splitRows(rows, c.n, c.block)
		var rs []io.Reader
		var names []string
		for i, p := range parts {
			rs = append(rs, strings.NewReader(p))
			names = append(names, fmt.Sprintf("part%d", i))
		}
		var b bytes.Buffer
		if err := mergeParts(&b, rs, names, c.block, len(rows)); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if b.String() != want {
			t.Errorf("%+v: merged\n%s\nwant\n%s", c, b.String(), want)
		}
	}
	// Parts out of order, or a part with lines left over.
	parts := splitRows(rows, 3, 2)
	err := mergeParts(io.Discard, []io.Reader{strings.NewReader(parts[0]), strings.NewReader(parts[1] + parts[2])}, []string{"a", "b"}, 2, -1)
	if err == nil || !strings.Contains(err.Error(), "lines left") {
		t.Errorf("mismatched parts: %v", err)
	}
	// A part that lost its last chunk looks complete; --rows catches it.
	short := []io.Reader{strings.NewReader(parts[0]), strings.NewReader(parts[1]), strings.NewReader(rows[4] + "\n" + rows[5] + "\n")}
	if err := mergeParts(io.Discard, short, []string{"a", "b", "c"}, 2, 11); err == nil || !strings.Contains(err.Error(), "want 11") {
		t.Errorf("missing chunk with --rows: %v", err)
	}
}

func TestShardReaderKeepsLineNumbers(t *testing.T) {
	in := "r0\n\nr1\nr2\nr3\nr4"
	var s shardFlag
	s.Set("1/2")
	b, err := io.ReadAll(newShardReader(strings.NewReader(in), s, 2))
	if err != nil {
		t.Fatal(err)
	}
	// Chunks of 2 rows: {r0,r1} to shard 0, {r2,r3} to 1, {r4} to 0.
	if want := "\n\n\nr2\nr3\n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// igsearchBinary builds the command once, so that tests can run stages as
// separate processes.
func igsearchBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "igsearch-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "igsearch")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runProcs starts one process per argument list at once and waits for all;
// each must exit 0. It returns their stdouts.
func runProcs(t *testing.T, argss ...[]string) []string {
	t.Helper()
	bin := igsearchBinary(t)
	cmds := make([]*exec.Cmd, len(argss))
	outs := make([]*bytes.Buffer, len(argss))
	errs := make([]*bytes.Buffer, len(argss))
	for i, args := range argss {
		cmds[i] = exec.Command(bin, args...)
		outs[i], errs[i] = new(bytes.Buffer), new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], errs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	var res []string
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("igsearch %s: %v\n%s", strings.Join(argss[i], " "), err, errs[i])
		}
		res = append(res, outs[i].String())
	}
	return res
}

func sameBytes(t *testing.T, what, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Errorf("%s: %s (%d bytes) and %s (%d bytes) differ", what, a, len(x), b, len(y))
	}
}

// TestIndexShardsAsProcesses builds 3 shards in 3 processes at once and
// checks that searching them together prints exactly what searching the
// unsharded index prints.
func TestIndexShardsAsProcesses(t *testing.T) {
	tmp := t.TempDir()
	corpus := filepath.Join(tmp, "c.jsonl")
	f, _ := os.Create(corpus)
	index.WriteSynthCorpus(f, index.SynthOptions{Docs: 4000, Words: 30, Vocab: 2000, Seed: 9})
	f.Close()
	whole := filepath.Join(tmp, "whole")
	runProcs(t, []string{"index", "build", "--corpus", corpus, "--out", whole, "--workers", "1"})
	var builds [][]string
	var shards []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(tmp, fmt.Sprintf("shard-%d", i))
		shards = append(shards, d)
		builds = append(builds, []string{"index", "build", "--corpus", corpus, "--out", d, "--workers", "1", "--shard", fmt.Sprintf("%d/3", i), "--ram-buffer", "1"})
	}
	runProcs(t, builds...)
	// Queries: the first words of some passages.
	var q strings.Builder
	rows := readRows(t, corpus)
	for i := 0; i < 40; i++ {
		var contents string
		json.Unmarshal(rows[i*97]["contents"], &contents)
		w := strings.Fields(strings.NewReplacer("\"", " ", "\n", " ", ".", " ").Replace(contents))
		line, _ := json.Marshal(map[string]any{"id": i, "query": strings.Join(w[i%5:i%5+1+i%3], " ")})
		q.Write(append(line, '\n'))
	}
	qf := filepath.Join(tmp, "q.jsonl")
	os.WriteFile(qf, []byte(q.String()), 0o644)
	outs := runProcs(t,
		[]string{"index", "search", "--index", whole, "--k", "20", "--queries", qf},
		[]string{"index", "search", "--index", strings.Join([]string{shards[2], shards[0], shards[1]}, ","), "--k", "20", "--queries", qf},
		[]string{"index", "search", "--index", whole, "--k", "5", "--queries", qf, "--format", "trec"},
		[]string{"index", "search", "--index", strings.Join(shards, ","), "--k", "5", "--queries", qf, "--format", "trec"},
	)
	if strings.Count(outs[0], "\n") != 40 || outs[0] != outs[1] {
		t.Errorf("sharded search differs from unsharded:\n%.600s\nvs\n%.600s", outs[1], outs[0])
	}
	if strings.Count(outs[2], "\n") < 100 || outs[2] != outs[3] {
		t.Errorf("sharded trec run differs from unsharded")
	}
	stats := runProcs(t, []string{"index", "stats", "--index", strings.Join(shards, ",")})[0]
	if !strings.Contains(stats, "all passages     4000 (dense global doc ids: true)") || strings.Count(stats, "shard ") != 3 {
		t.Errorf("stats:\n%s", stats)
	}
	if code, _ := captureIndex(t, "search", "--index", shards[0]+","+shards[0], "--query", "x"); code != 1 {
		t.Errorf("a shard given twice: exit %d, want 1", code)
	}
}

// TestRewardShardsAsProcesses scores rows in 3 processes and merges them.
func TestRewardShardsAsProcesses(t *testing.T) {
	tmp := t.TempDir()
	var rows []map[string]any
	for i := 0; i < 10; i++ {
		resp := fmt.Sprintf("<think> row %d </think> <answer> city %d </answer>", i, i%3)
		if i == 4 {
			resp = "no answer tag"
		}
		rows = append(rows, map[string]any{"id": i, "response": resp, "golden_answers": []string{"City 1", "city 2"}})
	}
	in := filepath.Join(tmp, "rows.jsonl")
	writeJSONL(t, in, rows)
	whole := filepath.Join(tmp, "whole.jsonl")
	args := [][]string{{"reward", "--in", in, "--out", whole}}
	var parts []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("part-%d.jsonl", i))
		parts = append(parts, p)
		args = append(args, []string{"reward", "--in", in, "--out", p, "--shard", fmt.Sprintf("%d/3", i)})
	}
	runProcs(t, args...)
	merged := filepath.Join(tmp, "merged.jsonl")
	runProcs(t, append([]string{"merge", "--block", "1", "--rows", "10", "--out", merged}, parts...))
	sameBytes(t, "reward", whole, merged)
	if n := len(readRows(t, parts[1])); n != 3 {
		t.Errorf("shard 1/3 of 10 rows holds %d rows, want 3", n)
	}
}

// TestEvalAndScoreIGShardsAsProcesses runs eval (sampling, two samples a
// question) and score-ig as 3 shard processes each, merges the parts, and
// compares them with the unsharded runs byte for byte.
func TestEvalAndScoreIGShardsAsProcesses(t *testing.T) {
	s := newAgentSetup(t)
	tmp := t.TempDir()
	var b strings.Builder
	for i, q := range s.world.Test {
		row, _ := json.Marshal(map[string]any{"id": q.ID, "question": q.Question, "golden_answers": q.GoldenAnswers, "data_source": []string{"one", "two"}[i%2]})
		b.Write(append(row, '\n'))
	}
	data := filepath.Join(tmp, "test.jsonl")
	os.WriteFile(data, []byte(b.String()), 0o644)
	// The world's index also as 3 shards: eval over them must roll out the same.
	var shardDirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(tmp, fmt.Sprint("world-shard-", i))
		if _, err := index.BuildFile(context.Background(), filepath.Join(s.worldDir, "corpus.jsonl"), d, index.BuildOptions{Workers: 1, Shard: i, Shards: 3}); err != nil {
			t.Fatal(err)
		}
		shardDirs = append(shardDirs, d)
	}
	indexDir := s.indexDir
	evalArgs := func(extra ...string) []string {
		return append([]string{"eval", "--model", s.modelDir, "--index", indexDir, "--data", data,
			"--chat=false", "--max-new-tokens", "6", "--max-turns", "2", "--batch-size", "2", "--group-size", "2",
			"--greedy=false", "--temperature", "1", "--seed", "5", "--threads", "1"}, extra...)
	}
	whole := filepath.Join(tmp, "records.jsonl")
	args := [][]string{evalArgs("--records", whole)}
	var parts []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("records-%d.jsonl", i))
		parts = append(parts, p)
		args = append(args, evalArgs("--records", p, "--shard", fmt.Sprintf("%d/3", i)))
	}
	indexDir = strings.Join(shardDirs, ",")
	viaShards := filepath.Join(tmp, "records-sharded-index.jsonl")
	args = append(args, evalArgs("--records", viaShards))
	outs := runProcs(t, args...)
	sameBytes(t, "eval over the index's 3 shards", whole, viaShards)
	merged := filepath.Join(tmp, "merged.jsonl")
	runProcs(t, append([]string{"merge", "--block", "4", "--rows", fmt.Sprint(2 * len(s.world.Test)), "--out", merged}, parts...))
	sameBytes(t, "eval records", whole, merged)
	summary := runProcs(t, []string{"eval", "--score-records", merged})[0]
	if summary == "" || summary != outs[0] {
		t.Errorf("eval summary of the merged records %q, unsharded %q", summary, outs[0])
	}

	// score-ig over logged trajectories with search steps (the random
	// policy's own records rarely search): 12 rows in chunks of 3, 3 shards;
	// the counterfactuals are drawn from the chunk with the chunk's seed.
	var traj []map[string]any
	for r := 0; r < 3; r++ {
		for _, row := range loggedTrajectories() {
			row["id"] = fmt.Sprint(row["id"], r)
			traj = append(traj, row)
		}
	}
	trajPath := filepath.Join(tmp, "traj.jsonl")
	writeJSONL(t, trajPath, traj)
	scored := filepath.Join(tmp, "scored.jsonl")
	args = [][]string{{"score-ig", "--model", s.modelDir, "--in", trajPath, "--out", scored, "--batch-size", "3", "--threads", "1"}}
	parts = nil
	for i := 0; i < 3; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("scored-%d.jsonl", i))
		parts = append(parts, p)
		args = append(args, []string{"score-ig", "--model", s.modelDir, "--in", trajPath, "--out", p, "--batch-size", "3", "--threads", "1", "--shard", fmt.Sprintf("%d/3", i)})
	}
	runProcs(t, args...)
	merged = filepath.Join(tmp, "scored-merged.jsonl")
	runProcs(t, append([]string{"merge", "--block", "3", "--rows", "12", "--out", merged}, parts...))
	sameBytes(t, "score-ig", scored, merged)
	if b, _ := os.ReadFile(scored); strings.Count(string(b), `"logp_random_mean"`) < 9 {
		t.Errorf("score-ig scored too few search steps:\n%s", b)
	}
}
