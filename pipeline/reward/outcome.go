package reward

import (
	"github.com/igsearch/igsearch/pipeline/pystr"
	"regexp"
	"strings"

	"github.com/igsearch/igsearch/pipeline/protocol"
)

var reAnswer = regexp.MustCompile(`(?s)<answer>(.*?)</answer>`)

// ExtractAnswer returns the content of the last <answer>…</answer> in a
// response (non-greedy, left to right, as the regular expression of
// qa_em.py), stripped as Python's str.strip() strips, and whether there is
// one. A response without a closed answer tag has none, and scores 0.
func ExtractAnswer(response string) (string, bool) {
	m := reAnswer.FindAllStringSubmatch(response, -1)
	if len(m) == 0 {
		return "", false
	}
	return pystr.Strip(m[len(m)-1][1]), true
}

// ExtractSolution is extract_solution of Search-R1's qa_em.py, which is
// applied to the full text prompt + response: the last answer, but only when
// there are at least two matches. Beware: the Search-R1 prompt itself holds
// two ("<answer> and </answer>", "<answer> Beijing </answer>"), so on a full
// text a response without an answer yields "Beijing". The reward here uses
// ExtractAnswer on the response alone.
func ExtractSolution(full string) (string, bool) {
	m := reAnswer.FindAllStringSubmatch(full, -1)
	if len(m) <= 1 {
		return "", false
	}
	return pystr.Strip(m[len(m)-1][1]), true
}

// Config selects the outcome reward (--reward-metric, --format-reward).
type Config struct {
	// Metric scores the answer: em (default), subem or f1.
	Metric Metric
	// FormatReward switches on the structure-format reward of Search-R1's
	// qa_em_format.py, with the three scores below.
	FormatReward bool
	// StructureFormatScore is given for a well-formed trajectory with a wrong
	// or missing answer, and subtracted from a correct answer in a malformed
	// one (Search-R1 v0.3 script: 0.2).
	StructureFormatScore float64
	// FinalFormatScore is given for a wrong answer in a malformed trajectory
	// (Search-R1: 0.1).
	FinalFormatScore float64
	// RetrievalScore is added when a well-formed trajectory retrieved a
	// passage containing a gold answer (Search-R1: 0).
	RetrievalScore float64
}

// DefaultConfig is plain EM with the format scores of Search-R1's
// train_grpo_format.sh, to be used when FormatReward is switched on.
func DefaultConfig() Config {
	return Config{Metric: MetricEM, StructureFormatScore: 0.2, FinalFormatScore: 0.1}
}

// Outcome is the outcome reward R of one response. Without FormatReward it
// is Score(Metric, answer, golds), or 0 when there is no answer. With it,
// as compute_score_em of qa_em_format.py (valid = ValidFormat):
//
//	no answer:      valid ? sfs + [retrieval]·rs : 0
//	correct answer: valid ? score : score − sfs
//	wrong answer:   valid ? sfs + [retrieval]·rs : ffs
//
// where correct means score > 0 and [retrieval] is RetrievalCorrect.
func Outcome(cfg Config, p protocol.Protocol, response string, golds []string) float64 {
	answer, ok := ExtractAnswer(response)
	score := 0.0
	if ok {
		score = Score(cfg.Metric, answer, golds)
	}
	if !cfg.FormatReward {
		return score
	}
	valid := ValidFormat(p, response)
	structure := func() float64 {
		r := cfg.StructureFormatScore
		if RetrievalCorrect(p, response, golds) {
			r += cfg.RetrievalScore
		}
		return r
	}
	switch {
	case !ok && valid, ok && score == 0 && valid:
		return structure()
	case !ok:
		return 0
	case score > 0 && valid:
		return score
	case score > 0:
		return score - cfg.StructureFormatScore
	default:
		return cfg.FinalFormatScore
	}
}

// RetrievalCorrect reports whether any observation block's trimmed content,
// normalised, contains a normalised gold answer (is_retrieval_correct).
func RetrievalCorrect(p protocol.Protocol, response string, golds []string) bool {
	for _, s := range protocol.Parse(p, "", response).Steps {
		c := Normalize(s.ObsContent(p))
		for _, g := range golds {
			if strings.Contains(c, Normalize(g)) {
				return true
			}
		}
	}
	return false
}

// ValidFormat checks the structure of a response: for Search-R1 the state
// machine of is_valid_sequence in qa_em_format.py (balanced tags, and only
// the sequence think → (search → information → think)* → answer with
// nothing but white space between tags); for AutoRefine its validate_format
// (each of think, search, refine, answer opened and closed equally often,
// and at least once).
func ValidFormat(p protocol.Protocol, response string) bool {
	if p.Refine {
		if response == "" {
			return false
		}
		for _, tag := range []string{"think", "search", "refine", "answer"} {
			n := strings.Count(response, "<"+tag+">")
			if n == 0 || n != strings.Count(response, "</"+tag+">") {
				return false
			}
		}
		return true
	}
	return validSequence(p, response)
}

func validSequence(p protocol.Protocol, content string) bool {
	obs := strings.Trim(p.ObsOpen, "<>")
	tags := []string{"think", "search", obs, "answer"}
	for _, tag := range tags {
		if strings.Count(content, "<"+tag+">") != strings.Count(content, "</"+tag+">") {
			return false
		}
	}
	re := regexp.MustCompile(`</?(?:think|search|` + regexp.QuoteMeta(obs) + `|answer)>`)
	next := map[[2]string]string{
		{"<think>", "start"}:                 "in_think",
		{"<think>", "information"}:           "in_think",
		{"</think>", "in_think"}:             "after_think",
		{"<search>", "after_think"}:          "in_search",
		{"</search>", "in_search"}:           "after_search",
		{"<" + obs + ">", "after_search"}:    "in_information",
		{"</" + obs + ">", "in_information"}: "information",
		{"<answer>", "after_think"}:          "in_answer",
		{"</answer>", "in_answer"}:           "end",
	}
	state := "start"
	text := func(s string) bool {
		if pystr.Strip(s) == "" {
			return true
		}
		switch state {
		case "in_think", "in_search", "in_information", "in_answer":
			return true
		}
		return false
	}
	last := 0
	for _, m := range re.FindAllStringIndex(content, -1) {
		if !text(content[last:m[0]]) {
			return false
		}
		s, ok := next[[2]string{content[m[0]:m[1]], state}]
		if !ok {
			return false
		}
		state, last = s, m[1]
	}
	return text(content[last:]) && state == "end"
}
