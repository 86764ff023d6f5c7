package reward

import (
	"bytes"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/pipeline/protocol"
)

func TestScoreRows(t *testing.T) {
	in := `{"id": "q1", "response": "<think>x</think><answer> The Paris! </answer>", "golden_answers": ["Paris"], "extra": {"b": [1, 2]}}

{"id": 2, "response": "no tag <answer>open", "golden_answers": "Paris", "reward": 9}
{"response": "<answer>Lyon</answer><answer>paris france</answer>", "reward_model": {"ground_truth": {"target": ["Paris"]}}, "answer": "old"}
{"id": "q4", "response": "<answer>1000</answer>", "golden_answers": [1000]}
`
	// Hand-worked: row 1 answer "The Paris!" → "paris" = gold: EM 1, F1 1.
	// Row 2: no closed tag → null, 0. Row 3: last answer "paris france" vs
	// "paris": EM 0, subem 1, F1 2·(1/2)·1/(1/2+1) = 2/3. Row 4: number gold.
	want := map[Metric]string{
		MetricEM: `{"id":"q1","response":"<think>x</think><answer> The Paris! </answer>","golden_answers":["Paris"],"extra":{"b":[1,2]},"answer":"The Paris!","reward":1}
{"id":2,"response":"no tag <answer>open","golden_answers":"Paris","answer":null,"reward":0}
{"response":"<answer>Lyon</answer><answer>paris france</answer>","reward_model":{"ground_truth":{"target":["Paris"]}},"answer":"paris france","reward":0}
{"id":"q4","response":"<answer>1000</answer>","golden_answers":[1000],"answer":"1000","reward":1}
`,
	}
	var out bytes.Buffer
	st, err := ScoreRows(strings.NewReader(in), &out, "rows.jsonl", Config{Metric: MetricEM}, protocol.SearchR1())
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != want[MetricEM] {
		t.Errorf("em output:\n%s\nwant\n%s", out.String(), want[MetricEM])
	}
	if st.Rows != 4 || st.NoAnswer != 1 || st.MeanReward != 0.5 {
		t.Errorf("stats %+v", st)
	}
	for m, rewards := range map[Metric][]string{
		MetricSubEM: {`"reward":1}`, `"reward":0}`, `"reward":1}`, `"reward":1}`},
		MetricF1:    {`"reward":1}`, `"reward":0}`, `"reward":0.6666666666666666}`, `"reward":1}`},
	} {
		out.Reset()
		if _, err := ScoreRows(strings.NewReader(in), &out, "rows.jsonl", Config{Metric: m}, protocol.SearchR1()); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for i, w := range rewards {
			if !strings.HasSuffix(lines[i], w) {
				t.Errorf("%s row %d: %s, want …%s", m, i+1, lines[i], w)
			}
		}
	}
}

func TestScoreRowsErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"id":1,"response":"x","golden_answers":["a"]}` + "\n" + `{"id":2,"golden_answers":["a"]}`, `rows.jsonl: line 2: row has no "response" string`},
		{`{"response":"x"}`, `line 1: missing "golden_answers"`},
		{`{"response":"x","golden_answers":[]}`, `line 1: empty "golden_answers"`},
		{`{"response":"x","golden_answers":[null]}`, `line 1: golden_answers: unsupported value`},
		{`{"response":3,"golden_answers":["a"]}`, `line 1: "response" must be a string`},
		{`[1]`, `line 1: bad JSON`},
		{`{"response":"x","golden_answers":["a"]} {}`, `line 1: bad JSON: trailing data`},
		{`{"response":"x",`, `line 1: bad JSON`},
	} {
		var out bytes.Buffer
		_, err := ScoreRows(strings.NewReader(c.in), &out, "rows.jsonl", Config{Metric: MetricEM}, protocol.SearchR1())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
}
