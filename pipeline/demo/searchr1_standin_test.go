package demo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/internal/searchr1test"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/train"
)

// TestTrainSearchR1StandIn runs one `igsearch train` iteration whose
// retriever is a stand-in for Search-R1's retrieval_server.py (e5 + FAISS
// in Search-R1; testdata/searchr1/retrieval_standin.py answers in exactly
// its format, with whole corpus rows and Python float scores), and checks
// that every search step got the stand-in's passages, in its order.
func TestTrainSearchR1StandIn(t *testing.T) {
	searchr1test.Python(t) // skip before the warm start without python3
	cfg, dir := warmStart(t)
	log := filepath.Join(dir, "standin.log")
	url := searchr1test.StartStandIn(t, filepath.Join(dir, "world", "corpus.jsonl"), "dense", "--topk", "3", "--log", log)

	cfg.Train.Iterations, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 1, 0, 0
	// Searches go to the stand-in; the BM25 index only supplies the random
	// passages of the corpus counterfactual.
	cfg.Retriever.URL = url
	cfg.IG.Counterfactual = "corpus"
	cfg.Train.Out = filepath.Join(dir, "standin")
	if _, err := train.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, filepath.Join(cfg.Train.Out, train.RolloutsDir, "iter-00000.jsonl"))
	// What the stand-in answered, one list of ids per query.
	logged, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, l := range strings.Split(strings.TrimSpace(string(logged)), "\n") {
		var e struct{ IDs []string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("stand-in log %q: %v", l, err)
		}
		served = append(served, strings.Join(e.IDs, ","))
	}
	rows := corpusContents(t, filepath.Join(dir, "world", "corpus.jsonl"))
	p := protocol.SearchR1()
	var got []string
	for i, r := range recs {
		steps := protocol.Parse(p, "", r.Response).Steps
		if len(steps) != len(r.Steps) {
			t.Fatalf("trajectory %d: %d parsed steps, %d recorded", i, len(steps), len(r.Steps))
		}
		for j, st := range steps {
			got = append(got, strings.Join(r.Steps[j].DocIDs, ","))
			// The observation shows the first passage as Search-R1 does:
			// its contents' first line, verbatim, as the title.
			first := "Doc 1(Title: " + strings.SplitN(rows[r.Steps[j].DocIDs[0]], "\n", 2)[0] + ")"
			if !strings.HasPrefix(st.ObsContent(p), first) {
				t.Errorf("trajectory %d step %d: observation %.80q does not start %q", i, j, st.ObsContent(p), first)
			}
		}
	}
	searches := len(got)
	sort.Strings(got)
	sort.Strings(served)
	if strings.Join(got, " ") != strings.Join(served, " ") {
		t.Errorf("the search steps' passages %v are not the stand-in's answers %v", got, served)
	}
	if searches == 0 {
		t.Fatal("no search was made: the stand-in served nothing")
	}
	t.Logf("%d trajectories, %d searches served by the Search-R1 stand-in", len(recs), searches)
}

// corpusContents maps each corpus row's id to its contents.
func corpusContents(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var row struct{ ID, Contents string }
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		m[row.ID] = row.Contents
	}
	return m
}
