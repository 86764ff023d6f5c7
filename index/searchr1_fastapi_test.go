package index

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/internal/searchr1test"
)

// TestStandInMatchesFastAPI checks the stand-in that the client tests use
// against Search-R1's own FastAPI endpoint (QueryRequest and
// retrieve_endpoint of retrieval_server.py, from the fetched repository,
// with the stand-in's ranking as its retriever): every answer must be the
// same bytes. It needs a python3 with fastapi and uvicorn (Debian:
// python3-fastapi python3-uvicorn) and skips, saying so, without them.
func TestStandInMatchesFastAPI(t *testing.T) {
	py := searchr1test.Python(t, "fastapi", "uvicorn")
	tmp := t.TempDir()
	server, corpus := searchr1test.WriteSource(t, tmp, "search_r1/search/retrieval_server.py"), filepath.Join(tmp, "c.jsonl")
	os.WriteFile(corpus, []byte(searchR1Corpus()), 0o644)
	bodies := []string{
		`{"queries": ["betaword", "nuword é"], "topk": 2, "return_scores": true}`,
		`{"queries": ["gammaword"], "topk": null, "return_scores": true}`,
		`{"queries": ["deltaword"], "topk": 0, "return_scores": true}`,
		`{"queries": ["epsilonword"], "return_scores": true}`,
		`{"queries": [], "topk": 3, "return_scores": true}`,
		`{"queries": ["zetaword", "etaword"], "topk": 1}`,
		`{"queries": ["thetaword iotaword kappaword"], "topk": 5, "return_scores": true}`,
		`{"queries": "x"}`,
		`{"topk": 3}`,
	}
	cmd := exec.Command(py, searchr1test.Script("compare_fastapi.py"), server, corpus)
	cmd.Stdin = strings.NewReader(strings.Join(bodies, "\n") + "\n")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("compare_fastapi.py: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(bodies) {
		t.Fatalf("%d answers for %d requests", len(lines), len(bodies))
	}
	for _, l := range lines {
		var r struct {
			Body             string
			FastAPI, StandIn [2]any
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.FastAPI[0] != r.StandIn[0] {
			t.Errorf("%s: status %v from FastAPI, %v from the stand-in", r.Body, r.FastAPI[0], r.StandIn[0])
		}
		// 422 texts differ between pydantic versions; 200 answers must be the same bytes.
		if r.FastAPI[0] == 200.0 && r.FastAPI[1] != r.StandIn[1] {
			t.Errorf("%s:\nFastAPI  %s\nstand-in %s", r.Body, r.FastAPI[1], r.StandIn[1])
		}
	}
}
