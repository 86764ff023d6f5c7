// Package reward computes the outcome rewards of a search-agent trajectory:
// exact match (EM), substring EM and token F1 of the final answer against the
// gold answers, with the answer normalisation of Search-R1's
// verl/utils/reward_score/qa_em.py, and the optional structure-format reward
// of Search-R1's qa_em_format.py.
package reward

import (
	"fmt"
	"github.com/igsearch/igsearch/pipeline/pystr"
	"strings"
)

// Normalize is SQuAD-style answer normalisation, as normalize_answer in
// Search-R1's qa_em.py: lowercase, remove ASCII punctuation
// (Python's string.punctuation), replace the whole words a, an and the by a
// space, and collapse runs of white space into one space.
//
// Every step is Python's, not Go's: str.lower() with Unicode special casing
// (İ → "i̇", final sigma), Python's Unicode \b (a word character is a
// letter, a number or '_', so "éthe" keeps its "the") and str.split()'s
// white space (which includes U+001C–U+001F). See package pystr.
func Normalize(s string) string {
	s = pystr.Lower(s)
	s = strings.Map(func(r rune) rune {
		if isPunct(r) {
			return -1
		}
		return r
	}, s)
	s = removeArticles(s)
	return strings.Join(pystr.Fields(s), " ")
}

// isPunct reports whether r is in Python's string.punctuation, which is
// exactly the printable ASCII characters that are neither letters, digits
// nor white space.
func isPunct(r rune) bool {
	return r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
}

// removeArticles is re.sub(r"\b(a|an|the)\b", " ", s): every maximal run of
// word characters equal to a, an or the becomes a single space.
func removeArticles(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if !pystr.IsWord(rs[i]) {
			b.WriteRune(rs[i])
			i++
			continue
		}
		j := i
		for j < len(rs) && pystr.IsWord(rs[j]) {
			j++
		}
		switch w := string(rs[i:j]); w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	return b.String()
}

// EM is the exact-match reward, em_check in qa_em.py: 1 when the normalised
// prediction equals any normalised gold answer, else 0.
func EM(prediction string, golds []string) float64 {
	p := Normalize(prediction)
	for _, g := range golds {
		if Normalize(g) == p {
			return 1
		}
	}
	return 0
}

// SubEM is the substring exact-match reward, subem_check in qa_em.py: 1 when
// any normalised gold answer is a substring of the normalised prediction.
// An empty normalised gold (e.g. "the") matches every prediction, as in the
// reference.
func SubEM(prediction string, golds []string) float64 {
	p := Normalize(prediction)
	for _, g := range golds {
		if strings.Contains(p, Normalize(g)) {
			return 1
		}
	}
	return 0
}

// F1 is the token-level F1 of the normalised prediction against each
// normalised gold, maximised over the golds, as FlashRAG's F1 score that
// AutoRefine's qa_em.py (compute_f1_scores) uses:
//
//	precision = common/|pred|, recall = common/|gold|, F1 = 2PR/(P+R)
//
// where common is the size of the multiset intersection of the white-space
// tokens. If either side normalises to "yes", "no" or "noanswer", the pair
// scores 0 unless both are equal.
func F1(prediction string, golds []string) float64 {
	p := Normalize(prediction)
	best := 0.0
	for _, g := range golds {
		g = Normalize(g)
		if (isSpecial(p) || isSpecial(g)) && p != g {
			continue
		}
		pt, gt := pystr.Fields(p), pystr.Fields(g)
		count := map[string]int{}
		for _, t := range gt {
			count[t]++
		}
		common := 0
		for _, t := range pt {
			if count[t] > 0 {
				count[t]--
				common++
			}
		}
		if common == 0 {
			continue
		}
		prec := float64(common) / float64(len(pt))
		rec := float64(common) / float64(len(gt))
		if f := 2 * prec * rec / (prec + rec); f > best {
			best = f
		}
	}
	return best
}

func isSpecial(s string) bool { return s == "yes" || s == "no" || s == "noanswer" }

// Metric names an answer-scoring function: "em", "subem" or "f1".
type Metric string

// The metrics that Score accepts.
const (
	MetricEM    Metric = "em"
	MetricSubEM Metric = "subem"
	MetricF1    Metric = "f1"
)

// ParseMetric checks a metric name from the command line.
func ParseMetric(s string) (Metric, error) {
	switch m := Metric(s); m {
	case MetricEM, MetricSubEM, MetricF1:
		return m, nil
	}
	return "", fmt.Errorf("reward: unknown metric %q (want em, subem or f1)", s)
}

// Score applies the metric m to a prediction and its gold answers.
func Score(m Metric, prediction string, golds []string) float64 {
	switch m {
	case MetricSubEM:
		return SubEM(prediction, golds)
	case MetricF1:
		return F1(prediction, golds)
	default:
		return EM(prediction, golds)
	}
}
