package trajectory

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
)

func sample() Record {
	r, m := 1.0, 0.5
	return Record{
		ID: "q1", Sample: 2, GoldenAnswers: []string{"Paris"}, Protocol: "search-r1",
		Prompt:   "P",
		Response: "<search>capital</search>\n\n<information>Doc 1(Title: Paris) capital of France</information>\n\n<answer>Paris</answer>",
		TokenIDs: []int32{10, 11, 12, 13, 14, 15, 16}, PromptLen: 1,
		Mask:        []TokenKind{Prompt, Generated, Generated, Observation, Observation, Generated, Generated},
		OldLogprobs: []float32{0, -0.5, -1, 0, 0, -0.25, -2},
		Steps:       []Step{{Turn: Span{1, 3}, Query: Span{2, 3}, Observation: Span{3, 5}, Refine: Span{5, 5}, DocIDs: []string{"d7"}}},
		Answer:      "Paris", FinishReason: FinishAnswer, Reward: &r,
		IGSteps: []ig.StepIG{{Step: 0, LogpReal: -1, LogpRandomMean: -1.5, IG: 0.5}}, IGMean: &m,
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := sample()
	logged := Record{ID: "q2", Prompt: "p", Response: "r", GoldenAnswers: []string{"g"}}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(logged.Logged()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination visible before Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	rd := NewReader(f, path)
	got, err := rd.Next()
	if err != nil || !reflect.DeepEqual(got, rec) {
		t.Errorf("record: %v\n got %+v\nwant %+v", err, got, rec)
	}
	got, err = rd.Next()
	if err != nil || !reflect.DeepEqual(got, logged) || got.HasTokens() {
		t.Errorf("logged: %v %+v", err, got)
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("end: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary file left: %v", ents)
	}
}

func TestReaderErrors(t *testing.T) {
	good := `{"id":"a","prompt":"p","response":"r","golden_answers":["g"]}`
	cases := map[string]string{
		good + "\n\n{\"id\": }\n":                                        "x.jsonl: line 3:",
		good + "\n" + `{"id":"b","prompt":"p","response":"r"}`:           "x.jsonl: line 2: record \"b\": no golden_answers",
		`{"id":"c","golden_answers":["g"],"token_ids":[1,2],"mask":[1]}`: "x.jsonl: line 1: record \"c\" sample 0: 1 mask entries for 2 tokens",
		`{"id":"d","golden_answers":["g"],"token_ids":[1],"mask":[1],"steps":[{"turn":{"start":0,"end":2},"query":{"start":0,"end":0},"observation":{"start":0,"end":0},"refine":{"start":0,"end":0}}]}`: "step 0: span [0,2) outside 1 tokens",
	}
	for in, want := range cases {
		rd := NewReader(strings.NewReader(in), "x.jsonl")
		var err error
		for err == nil {
			_, err = rd.Next()
		}
		if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestAbortAndShapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	w, _ := Create(path)
	w.Write(Record{ID: "a", IGSteps: []ig.StepIG{}})
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
		t.Errorf("abort left %v", ents)
	}
	if js, _ := json.Marshal(Record{ID: "a", IGSteps: []ig.StepIG{}}); !strings.Contains(string(js), `"ig_steps":[]`) {
		t.Errorf("scored row without steps: %s", js)
	}
	if js, _ := json.Marshal(Record{ID: "a"}); strings.Contains(string(js), "ig_") || strings.Contains(string(js), "token_ids") {
		t.Errorf("unscored logged row: %s", js)
	}
	rec := sample()
	if got := rec.LossMask(); !reflect.DeepEqual(got, []float32{0, 1, 1, 0, 0, 1, 1}) {
		t.Errorf("LossMask = %v", got)
	}
	want := []advantage.StepSpans{{Query: advantage.Span{Start: 2, End: 3}, Generated: []advantage.Span{{Start: 1, End: 3}, {Start: 5, End: 5}}}}
	if got := rec.AdvantageSpans(); !reflect.DeepEqual(got, want) {
		t.Errorf("AdvantageSpans = %+v", got)
	}
	if p := rec.Parse(protocol.SearchR1()); len(p.Steps) != len(rec.Steps) || p.Steps[0].Query != "capital" {
		t.Errorf("Parse = %+v", p.Steps)
	}
}
