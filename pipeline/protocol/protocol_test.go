package protocol

import (
	"strings"
	"testing"
)

func TestPromptVerbatim(t *testing.T) {
	got := SearchR1().Prompt("  who wrote hamlet ")
	want := "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new information. After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. You can search as many times as your want. If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: who wrote hamlet?\n"
	if got != want {
		t.Errorf("search-r1 prompt:\n got %q\nwant %q", got, want)
	}
	got = AutoRefine().Prompt("Is it?")
	want = "You are a helpful assistant excel at answering questions with multi-turn search engine calling. To answer questions, you must first reason through the available information using <think> and </think>. If you identify missing knowledge, you may issue a search request using <search> query </search> at any time. The retrieval system will provide you with the three most relevant documents enclosed in <documents> and </documents>. After each search, you need to summarize and refine the existing documents in <refine> and </refine>. You may send multiple search requests if needed. Once you have sufficient information, provide a concise final answer using <answer> and </answer>. For example, <answer> Donald Trump </answer>. Question: Is it?\n"
	if got != want {
		t.Errorf("autorefine prompt:\n got %q\nwant %q", got, want)
	}
}

func TestLookup(t *testing.T) {
	if p, err := Lookup("autorefine"); err != nil || p.ObsOpen != "<documents>" || !p.Refine {
		t.Errorf("Lookup(autorefine) = %+v, %v", p, err)
	}
	if _, err := Lookup("react"); err == nil {
		t.Error("Lookup(react): want error")
	}
}

func TestObservation(t *testing.T) {
	docs := []Doc{{ID: "1", Contents: "Paris\nParis is the capital.\nIt is big."}, {ID: "2", Contents: "Lyon"}}
	want := "\n\n<information>Doc 1(Title: Paris) Paris is the capital.\nIt is big.\nDoc 2(Title: Lyon)</information>\n\n"
	if got := SearchR1().Observation(docs); got != want {
		t.Errorf("Observation:\n got %q\nwant %q", got, want)
	}
	if got := AutoRefine().ObservationBlock(docs[:1]); got != "<documents>Doc 1(Title: Paris) Paris is the capital.\nIt is big.</documents>" {
		t.Errorf("ObservationBlock: %q", got)
	}
}

func TestTruncatedObservation(t *testing.T) {
	words := func(s string) int { return len(strings.Fields(s)) }
	docs := []Doc{{Contents: "T\na b c d e f"}}
	// Full: "<information>Doc 1(Title: T) a b c d e f</information>" = 9 words.
	p := SearchR1()
	if got := p.TruncatedObservation(docs, 9, words); got != p.Observation(docs) {
		t.Errorf("fits: %q", got)
	}
	// 6 words allowed: "<information>Doc", "1(Title:", "T)", "a", "b", "c</information>".
	want := "\n\n<information>Doc 1(Title: T) a b c</information>\n\n"
	if got := p.TruncatedObservation(docs, 6, words); got != want {
		t.Errorf("truncated:\n got %q\nwant %q", got, want)
	}
	if got := p.TruncatedObservation(docs, 0, words); got != p.Observation(docs) {
		t.Errorf("disabled: %q", got)
	}
}

func TestActions(t *testing.T) {
	cases := []struct {
		turn string
		want Action
	}{
		{"<think>x</think> <search> capital of France </search>", Action{ActionSearch, "capital of France"}},
		{"<answer> Paris </answer>", Action{ActionAnswer, "Paris"}},
		{"<search>unclosed <answer>A</answer>", Action{ActionAnswer, "A"}},
		{"<answer>a</search>", Action{ActionInvalid, ""}},
		{"just text", Action{ActionInvalid, ""}},
		{"<search>q1</search><answer>x</answer>", Action{ActionSearch, "q1"}},
	}
	for _, c := range cases {
		if got := ParseAction(c.turn); got != c.want {
			t.Errorf("ParseAction(%q) = %+v, want %+v", c.turn, got, c.want)
		}
	}
	if got := CutAtStop("<search>a</search> more</search>"); got != "<search>a</search>" {
		t.Errorf("CutAtStop search: %q", got)
	}
	if got := CutAtStop("<answer>a</answer>tail"); got != "<answer>a</answer>" {
		t.Errorf("CutAtStop answer: %q", got)
	}
	if !strings.Contains(CorrectionMessage, "between <search> and </search>. If I want") {
		t.Error("correction message text")
	}
}

func TestParseSearchR1(t *testing.T) {
	resp := "<think>need capital</think>\n<search> capital of France </search>\n\n" +
		"<information>Doc 1(Title: Paris) Paris is the capital of France.</information>\n\n" +
		"<think>ok</think> stray </think>\n<search>q2</search>\n\n<information>short</information>\n\n" +
		"<answer> Paris </answer>"
	got := Parse(SearchR1(), "PROMPT", resp)
	if got.FirstSearch != strings.Index(resp, "<search>") || got.FirstSearch != 28 {
		t.Errorf("FirstSearch = %d", got.FirstSearch)
	}
	if len(got.Steps) != 2 {
		t.Fatalf("steps = %d, want 2", len(got.Steps))
	}
	s0, s1 := got.Steps[0], got.Steps[1]
	if s0.Think != "need capital" || s0.Query != "capital of France" || s0.SearchBlock != "<search> capital of France </search>" {
		t.Errorf("step 0 = %+v", s0)
	}
	if s0.ObsBlock != "<information>Doc 1(Title: Paris) Paris is the capital of France.</information>" || !s0.HasObservation(SearchR1()) {
		t.Errorf("step 0 obs = %q", s0.ObsBlock)
	}
	if s0.Refine.Ok() || s0.RefineBlock != "" {
		t.Errorf("search-r1 has no refine: %+v", s0.Refine)
	}
	if s1.Think != "ok" || s1.Query != "q2" || s1.ObsBlock != "<information>short</information>" {
		t.Errorf("step 1 = %+v", s1)
	}
	if s1.HasObservation(SearchR1()) { // "short" has 5 < 10 characters
		t.Error("step 1: short observation counted")
	}
	if !got.HasAnswer || got.Answer != "Paris" {
		t.Errorf("answer = %q %v", got.Answer, got.HasAnswer)
	}
}

func TestParseCorrectionAndUnclosed(t *testing.T) {
	// Turn 1 is invalid (unclosed search); the correction message's literal
	// tags must not count. Turn 2 searches; turn 3 is cut off inside an
	// unclosed observation, which ends the parse.
	resp := "<think>hmm</think><search>broken" + CorrectionMessage +
		"<search>real</search>\n\n<information>0123456789ab</information>\n\n" +
		"<search>q3</search>\n\n<information>cut off"
	got := Parse(SearchR1(), "", resp)
	if got.FirstSearch != len("<think>hmm</think>") {
		t.Errorf("FirstSearch = %d", got.FirstSearch)
	}
	if len(got.Steps) != 1 || got.Steps[0].Query != "real" {
		t.Fatalf("steps = %+v", got.Steps)
	}
	if got.HasAnswer {
		t.Errorf("answer from the correction message: %q", got.Answer)
	}
	// The search is found even with a stray <search> inside its window.
	if got.Steps[0].Think != "hmm" {
		t.Errorf("think = %q", got.Steps[0].Think)
	}
}

func TestParseAutoRefine(t *testing.T) {
	resp := "<think>a</think><search>q1</search>\n\n<documents>Doc 1(Title: A) alpha text</documents>\n\n" +
		"<refine> alpha </refine><think>b</think><search>q2</search>\n\n<documents>Doc 1(Title: B) beta text</documents>\n\n" +
		"<refine> beta summary\n <search>q3</search>\n\n<documents>Doc 1(Title: C) gamma text</documents>\n\n" +
		"<think>no refine</think><answer>x</answer>"
	got := Parse(AutoRefine(), "", resp)
	if len(got.Steps) != 3 {
		t.Fatalf("steps = %d", len(got.Steps))
	}
	want := []struct{ think, query, obs, refine string }{
		{"a", "q1", "<documents>Doc 1(Title: A) alpha text</documents>", "<refine> alpha </refine>"},
		{"b", "q2", "<documents>Doc 1(Title: B) beta text</documents>", "<refine>beta summary</refine>"},
		{"", "q3", "<documents>Doc 1(Title: C) gamma text</documents>", ""},
	}
	for i, w := range want {
		s := got.Steps[i]
		if s.Think != w.think || s.Query != w.query || s.ObsBlock != w.obs || s.RefineBlock != w.refine {
			t.Errorf("step %d = think %q query %q obs %q refine %q, want %+v", i, s.Think, s.Query, s.ObsBlock, s.RefineBlock, w)
		}
	}
	// The unclosed refine ends at "\n <search>": its span is "<refine> beta summary".
	if s := got.Steps[1]; resp[s.Refine.Start:s.Refine.End] != "<refine> beta summary" {
		t.Errorf("unclosed refine span = %q", resp[s.Refine.Start:s.Refine.End])
	}
	if got.Answer != "x" {
		t.Errorf("answer = %q", got.Answer)
	}
}

func TestAssistantStart(t *testing.T) {
	s := "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA"
	if got := AssistantStart(s); s[got:] != "A" {
		t.Errorf("AssistantStart = %d", got)
	}
	if AssistantStart("plain") != 0 {
		t.Error("plain text")
	}
}
