package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/internal/searchr1test"
	"github.com/igsearch/igsearch/pipeline/protocol"
)

// searchR1Client lifts LLMGenerationManager's execute_predictions,
// postprocess_predictions, batch_search, _batch_search and _passages2string
// out of Search-R1's generation.py (whose module imports torch) into a small
// class, and runs execute_predictions on each turn read from stdin.
const searchR1Client = `
import ast, json, re, sys
from typing import List, Any, Tuple, Dict
import requests
src = open(sys.argv[1]).read()
cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "LLMGenerationManager")
keep = {"execute_predictions", "postprocess_predictions", "batch_search", "_batch_search", "_passages2string"}
funcs = [f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name in keep]
assert len(funcs) == len(keep), [f.name for f in funcs]
mod = ast.Module(body=[ast.ClassDef(name="Manager", bases=[], keywords=[], body=funcs, decorator_list=[])], type_ignores=[])
ns = {"re": re, "requests": requests, "List": List, "Any": Any, "Tuple": Tuple, "Dict": Dict}
exec(compile(ast.fix_missing_locations(mod), "generation.py", "exec"), ns)
class Config: pass
m = ns["Manager"]()
m.config = Config()
m.config.search_url, m.config.topk = sys.argv[2], int(sys.argv[3])
for line in sys.stdin:
    preds = json.loads(line)
    obs, dones, valid, is_search = m.execute_predictions(preds, "<|endoftext|>", [True] * len(preds))
    print(json.dumps(obs))
`

// TestSearchR1ClientAgainstServe runs Search-R1's own client code
// (generation.py, from the fetched repository) against the igsearch
// retrieval server, and checks each observation it builds against the one
// igsearch's rollout builds from the same passages. One turn searches
// nothing: Search-R1 then posts {"queries": []}, which must not crash it.
func TestSearchR1ClientAgainstServe(t *testing.T) {
	py := searchr1test.Python(t, "requests")
	gen := searchr1test.WriteSource(t, t.TempDir(), "search_r1/llm_agent/generation.py")
	tmp := t.TempDir()
	corpus := filepath.Join(tmp, "c.jsonl")
	var rows bytes.Buffer
	for i, c := range []string{
		"\"Paris\"\nParis is the capital of France.",
		"Lyon\nLyon is a city in France on the Rhone.",
		"\"Rome\"\r\nRome is the capital of Italy.\nIt has seven hills.",
		"Berlin is the capital of Germany, no title line",
		"\"Oslo\"\nOslo is the capital of Norway.\x1f",
		"\"Café \u00e9\"\nMadrid is the capital of Spain \u2028 and \u0085 Europe.",
	} {
		b, _ := json.Marshal(map[string]string{"id": fmt.Sprint(i), "contents": c})
		rows.Write(append(b, '\n'))
	}
	os.WriteFile(corpus, rows.Bytes(), 0o644)
	dir := filepath.Join(tmp, "ix")
	if code, _ := capture(t, "index", "build", "--corpus", corpus, "--out", dir); code != 0 {
		t.Fatalf("index build: exit %d", code)
	}
	ix, err := index.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	srv := httptest.NewServer(index.NewServer(ix, index.ServerOptions{}))
	defer srv.Close()

	turns := [][]string{
		{"<think>x</think><search> capital of France </search>", "<answer> Paris </answer>", "no action here", "<search>Rome hills</search>"},
		{"<answer>a</answer>", "nothing"}, // no search: {"queries": []}
		{"<search>capital</search>", "<search>Madrid Europe</search>", "<search>Norway</search>"},
	}
	var in bytes.Buffer
	for _, turn := range turns {
		b, _ := json.Marshal(turn)
		in.Write(append(b, '\n'))
	}
	const topk = 3
	cmd := exec.Command(py, "-c", searchR1Client, gen, srv.URL+"/retrieve", fmt.Sprint(topk))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Search-R1 client: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(turns) {
		t.Fatalf("%d answers for %d turns:\n%s", len(lines), len(turns), out)
	}
	p := protocol.SearchR1()
	for ti, turn := range turns {
		var obs []string
		if err := json.Unmarshal([]byte(lines[ti]), &obs); err != nil {
			t.Fatal(err)
		}
		for i, pred := range turn {
			act := protocol.ParseAction(protocol.CutAtStop(pred))
			var want string
			switch act.Kind {
			case protocol.ActionSearch:
				res, err := ix.SearchBatch(context.Background(), []string{act.Content}, topk)
				if err != nil {
					t.Fatal(err)
				}
				docs := make([]protocol.Doc, len(res[0]))
				for j, r := range res[0] {
					docs[j] = protocol.Doc{ID: r.Doc.ID, Contents: r.Doc.Contents()}
				}
				want = p.Observation(docs)
			case protocol.ActionAnswer:
				want = ""
			default:
				continue // the correction message is the protocol's own test
			}
			if obs[i] != want {
				t.Errorf("turn %d, %q:\nSearch-R1 %+q\nigsearch  %+q", ti, pred, obs[i], want)
			}
		}
	}
}
