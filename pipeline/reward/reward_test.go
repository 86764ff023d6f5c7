package reward

import (
	"math"
	"testing"

	"github.com/igsearch/igsearch/pipeline/protocol"
)

func TestNormalize(t *testing.T) {
	// Each expected value is normalize_answer of qa_em.py worked by hand:
	// lower → drop string.punctuation → \b(a|an|the)\b → " " → collapse.
	cases := map[string]string{
		"The Beatles":             "beatles",
		"  A  Tale of Two Cities": "tale of two cities",
		"U.S.A.":                  "usa",
		"an apple, the pear":      "apple pear",
		"Theatre anthem":          "theatre anthem", // articles only as whole words
		"rock'n'roll":             "rocknroll",
		"a-the b":                 "athe b",    // "-" goes first, so "athe" is one word
		"éthe":                    "éthe",      // é is a word character: no \b before "the"
		"Café—the end":            "café— end", // "—" is not ASCII punctuation, but a \b
		"1,000 m²":                "1000 m²",
		"tab\tand\nnewline":       "tab and newline",
		"_the_":                   "", // "_" is in string.punctuation
	}
	for in, want := range cases {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEMSubEMF1(t *testing.T) {
	golds := []string{"Paris", "City of Light"}
	if EM("the paris.", golds) != 1 || EM("Paris, France", golds) != 0 || EM("city of light", golds) != 1 {
		t.Error("EM")
	}
	if SubEM("Paris, France", golds) != 1 || SubEM("Lyon", golds) != 0 {
		t.Error("SubEM")
	}
	// pred "paris france" vs gold "paris": common 1, P=1/2, R=1, F1=2·0.5/1.5=2/3.
	// vs "city of light": 0. Max = 2/3.
	if got := F1("Paris, France", golds); math.Abs(got-2.0/3) > 1e-12 {
		t.Errorf("F1 = %v, want 2/3", got)
	}
	// pred "a b b c" → "b b c" (article a dropped); gold "b c c d": common b×1, c×1 = 2,
	// P = 2/3, R = 2/4, F1 = 2·(2/3)(1/2)/(2/3+1/2) = (2/3)/(7/6) = 4/7.
	if got := F1("a b b c", []string{"b c c d"}); math.Abs(got-4.0/7) > 1e-12 {
		t.Errorf("F1 multiset = %v, want 4/7", got)
	}
	if F1("yes", []string{"yes it is"}) != 0 || F1("yes", []string{"Yes."}) != 1 {
		t.Error("F1 yes/no rule")
	}
	if m, err := ParseMetric("f1"); err != nil || Score(m, "Paris", golds) != 1 {
		t.Error("ParseMetric/Score")
	}
	if _, err := ParseMetric("bleu"); err == nil {
		t.Error("ParseMetric(bleu): want error")
	}
}

func TestExtractAnswer(t *testing.T) {
	a, ok := ExtractAnswer("<answer> x </answer> then <answer>\n Paris \n</answer> <answer>open")
	if !ok || a != "Paris" {
		t.Errorf("ExtractAnswer = %q %v", a, ok)
	}
	if _, ok := ExtractAnswer("no answer"); ok {
		t.Error("ExtractAnswer on no answer")
	}
	prompt := protocol.SearchR1().Prompt("q")
	// The prompt alone holds two matches (" and ", " Beijing "), so qa_em.py
	// extracts "Beijing" from a response without an answer.
	if a, ok := ExtractSolution(prompt + "<answer>unclosed"); !ok || a != "Beijing" {
		t.Errorf("ExtractSolution quirk = %q %v", a, ok)
	}
	if _, ok := ExtractSolution("<answer>one</answer>"); ok {
		t.Error("ExtractSolution: one match must give none")
	}
	if a, ok := ExtractSolution(prompt + "<answer> Lyon </answer>"); !ok || a != "Lyon" {
		t.Errorf("ExtractSolution = %q %v", a, ok)
	}
}

func TestOutcomeFormat(t *testing.T) {
	p := protocol.SearchR1()
	golds := []string{"Paris"}
	valid := "<think>x</think>\n<search>q</search>\n\n<information>Doc 1(Title: P) Paris is nice</information>\n\n<think>y</think>\n<answer>Paris</answer>"
	validWrong := "<think>x</think><answer>Lyon</answer>"
	invalidRight := "<answer>Paris</answer>"                      // no think before answer
	invalidWrong := "<think>x</think> junk <answer>Lyon</answer>" // text between tags
	if !ValidFormat(p, valid) || !ValidFormat(p, validWrong) || ValidFormat(p, invalidRight) || ValidFormat(p, invalidWrong) {
		t.Fatal("ValidFormat")
	}
	plain := Config{Metric: MetricEM}
	if Outcome(plain, p, valid, golds) != 1 || Outcome(plain, p, validWrong, golds) != 0 {
		t.Error("plain outcome")
	}
	f := DefaultConfig()
	f.FormatReward = true
	f.RetrievalScore = 0.05
	cases := []struct {
		resp string
		want float64
	}{
		{valid, 1},
		{validWrong, 0.2},
		{invalidRight, 0.8},
		{invalidWrong, 0.1},
		{"<think>x</think>", 0}, // no answer, unfinished: invalid
		{"<think>x</think>\n<search>q</search>\n\n<information>Paris</information>\n\n<think>z</think><answer>Rome</answer>", 0.25}, // retrieval bonus
	}
	for _, c := range cases {
		if got := Outcome(f, p, c.resp, golds); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Outcome(%q) = %v, want %v", c.resp, got, c.want)
		}
	}
	ar := protocol.AutoRefine()
	if !ValidFormat(ar, "<think>a</think><search>q</search><documents>d</documents><refine>r</refine><answer>x</answer>") ||
		ValidFormat(ar, "<think>a</think><search>q</search><answer>x</answer>") {
		t.Error("AutoRefine ValidFormat")
	}
}
