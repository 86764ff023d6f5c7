package reward

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/igsearch/igsearch/internal/searchr1test"
)

// The parity tests compare this package with Search-R1's own
// verl/utils/reward_score/qa_em.py, run by python3 at test time from a
// fetched copy of the repository (never committed; see package
// searchr1test). Without python3 or the repository the live comparison
// skips and says why; the committed golden file
// testdata/qa_em_golden.jsonl, produced by the same run, is checked either
// way.

// emCase is one row of testdata/qa_em_cases.jsonl.
type emCase struct {
	Response string   `json:"response"`
	Golds    []string `json:"golden_answers"`
	Note     string   `json:"note,omitempty"`
}

// emGolden is what qa_em.py gives for one case: normalize_answer of the
// extracted answer, and compute_score_em / compute_score_subem on the
// response after a prefix with one <answer> match (so that a response
// without an answer yields None → 0, as the reward stage defines it).
type emGolden struct {
	Answer     *string  `json:"answer"`
	Normalized *string  `json:"normalized"`
	Golds      []string `json:"normalized_golds"`
	EM         float64  `json:"em"`
	SubEM      float64  `json:"subem"`
}

// qaEMRunner imports qa_em.py and scores every case from stdin.
const qaEMRunner = `
import json, sys, io, contextlib, random
sys.path.insert(0, sys.argv[1])
import qa_em
random.seed(0)
PREFIX = "<answer>prefix</answer>\n"
for line in sys.stdin:
    c = json.loads(line)
    resp, golds = c["response"], c["golden_answers"]
    with contextlib.redirect_stdout(io.StringIO()):
        em = qa_em.compute_score_em(PREFIX + resp, {"target": golds})
        sub = qa_em.compute_score_subem(PREFIX + resp, {"target": golds})
    ans = qa_em.extract_solution(PREFIX + resp)
    print(json.dumps({
        "answer": ans,
        "normalized": None if ans is None else qa_em.normalize_answer(ans),
        "normalized_golds": [qa_em.normalize_answer(g) for g in golds],
        "em": float(em), "subem": float(sub),
    }, ensure_ascii=False))
`

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: line %d: %v", path, n, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkGolden compares the Go reward functions with qa_em.py's results.
func checkGolden(t *testing.T, cases []emCase, golden []emGolden, source string) {
	t.Helper()
	if len(golden) != len(cases) {
		t.Fatalf("%s: %d results for %d cases", source, len(golden), len(cases))
	}
	bad := 0
	for i, c := range cases {
		g := golden[i]
		ans, ok := ExtractAnswer(c.Response)
		var got emGolden
		if ok {
			n := Normalize(ans)
			got.Answer, got.Normalized = &ans, &n
			got.EM, got.SubEM = Score(MetricEM, ans, c.Golds), Score(MetricSubEM, ans, c.Golds)
		}
		for _, gold := range c.Golds {
			got.Golds = append(got.Golds, Normalize(gold))
		}
		a, b := fmt.Sprintf("%+q", mustJSON(got)), fmt.Sprintf("%+q", mustJSON(g))
		if a != b {
			bad++
			t.Errorf("case %d (%s) %+q: Go %s, %s %s", i+1, c.Note, c.Response, a, source, b)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d cases differ from %s", bad, len(cases), source)
	}
}

func mustJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return b.String()
}

// TestQAEMGolden checks the Go EM against the committed output of
// qa_em.py (testdata/qa_em_golden.jsonl; provenance in testdata/README.md).
func TestQAEMGolden(t *testing.T) {
	cases := readJSONL[emCase](t, "testdata/qa_em_cases.jsonl")
	if len(cases) < 300 {
		t.Fatalf("%d cases, want at least 300", len(cases))
	}
	checkGolden(t, cases, readJSONL[emGolden](t, "testdata/qa_em_golden.jsonl"), "qa_em_golden.jsonl")
}

// TestQAEMLive runs Search-R1's qa_em.py itself over the case file and
// compares. With IGSEARCH_WRITE_GOLDEN=1 it rewrites the golden file from
// that run.
func TestQAEMLive(t *testing.T) {
	py := searchr1test.Python(t)
	dir := t.TempDir()
	searchr1test.WriteSource(t, dir, "verl/utils/reward_score/qa_em.py")
	in, err := os.ReadFile("testdata/qa_em_cases.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", qaEMRunner, dir)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 qa_em.py: %v\n%s", err, stderr.Bytes())
	}
	res := filepath.Join(dir, "golden.jsonl")
	if err := os.WriteFile(res, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := readJSONL[emCase](t, "testdata/qa_em_cases.jsonl")
	checkGolden(t, cases, readJSONL[emGolden](t, res), "qa_em.py")
	if os.Getenv("IGSEARCH_WRITE_GOLDEN") == "1" && !t.Failed() {
		if err := os.WriteFile("testdata/qa_em_golden.jsonl", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
