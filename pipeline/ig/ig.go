// Package ig is the text and arithmetic side of the information-gain (IG)
// step reward of IG-Search: the contexts C_t^real and C_t^rand,j of each
// search step, the counterfactual pool, the scoring requests a policy
// answers with per-token log-probabilities, the head-weighted mean logP and
// the IG itself,
//
//	IG_t = logP(a* | C_t^real) − (1/N) Σ_j logP(a* | C_t^rand,j).
//
// The model calls live elsewhere: a scorer takes the []Request of a batch,
// returns the log-probabilities of each continuation's tokens, and Collect
// turns them into per-step IG. The reference is ig_reward.py of the
// IG-Search authors (github.com/MaYufei-NPU/IG-Search); the differences are
// noted where they occur.
package ig

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/igsearch/igsearch/pipeline/protocol"
)

// AnswerPrefix is appended to every context; the gold answer follows it as
// the scored continuation.
const AnswerPrefix = "\n<answer> "

// Head weighting of WeightedLogP: the first HeadTokens answer tokens weigh
// HeadWeight, the rest 1.
const (
	HeadTokens = 3
	HeadWeight = 3.0
)

// Gold is the --ig-gold rule: which gold answers are scored. The zero value
// and Gold{Best: 1} are "first".
type Gold struct {
	// Best is K of "best:K": score up to K golds and keep the one with the
	// highest real logP. 0 or 1 means "first".
	Best int
}

// ParseGold parses "first" or "best:K" (K >= 1).
func ParseGold(s string) (Gold, error) {
	if s == "first" {
		return Gold{}, nil
	}
	if k, ok := strings.CutPrefix(s, "best:"); ok {
		n, err := strconv.Atoi(k)
		if err == nil && n >= 1 {
			return Gold{Best: n}, nil
		}
	}
	return Gold{}, fmt.Errorf("ig: bad ig_gold %q (want first or best:K with K >= 1)", s)
}

// String is the flag form of g.
func (g Gold) String() string {
	if g.Best <= 1 {
		return "first"
	}
	return "best:" + strconv.Itoa(g.Best)
}

// Select returns the golds that g scores.
func (g Gold) Select(golds []string) []string {
	return golds[:min(len(golds), max(g.Best, 1))]
}

// Counterfactual is the --ig-counterfactual source of random observations.
type Counterfactual string

// The counterfactual sources.
const (
	// CounterfactualBatch draws (observation, refine) pairs of other steps in
	// the batch (the reference's default).
	CounterfactualBatch Counterfactual = "batch"
	// CounterfactualCorpus draws random documents from the index.
	CounterfactualCorpus Counterfactual = "corpus"
)

// ParseCounterfactual checks an ig_counterfactual value.
func ParseCounterfactual(s string) (Counterfactual, error) {
	switch c := Counterfactual(s); c {
	case CounterfactualBatch, CounterfactualCorpus:
		return c, nil
	}
	return "", fmt.Errorf("ig: bad ig_counterfactual %q (want batch or corpus)", s)
}

// Config holds the IG settings, named as their flags.
type Config struct {
	// Random is N, the counterfactual draws per step (ig_random, default 3).
	Random int
	// Gold is the gold-answer rule (ig_gold, default first).
	Gold Gold
	// Counterfactual is the random observation source (ig_counterfactual,
	// default batch). Requests does not read it; the caller picks the
	// DrawFunc (BatchDraws or CorpusDraws) from it.
	Counterfactual Counterfactual
	// MaxContext is the context length in tokens after left truncation
	// (ig_max_context, default 4096); see Tokens.
	MaxContext int
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{Random: 3, Counterfactual: CounterfactualBatch, MaxContext: 4096}
}

// Pair is what a counterfactual replaces in a step: its observation block
// (tags included) and its refine block ("" when the protocol or the step
// has none). The two are replaced together, so that the refine block never
// summarises documents that are not there.
type Pair struct {
	Obs    string
	Refine string
}

// StepPair is the real pair of a parsed step.
func StepPair(s protocol.Step) Pair { return Pair{Obs: s.ObsBlock, Refine: s.RefineBlock} }

// Prefix is the context's fixed start: prompt + the response up to its first
// "<search>", right-stripped. It keeps any think text before the first
// search. A response with steps but no "<search>" at all is cut at its
// first observation instead (the reference would use the first 512
// characters).
func Prefix(t protocol.Parsed) string {
	cut := len(t.Response)
	switch {
	case t.FirstSearch >= 0:
		cut = t.FirstSearch
	case len(t.Steps) > 0:
		cut = t.Steps[0].Obs.Start
	}
	return strings.TrimRightFunc(t.Prompt+t.Response[:cut], unicode.IsSpace)
}

// Context is C_t for step t of t.Steps (0-based; it panics if out of range):
// Prefix, then for every step s <= t its search block, its observation block
// and its refine block (when not empty), all joined by "\n". Think text
// between steps and all steps after t are dropped. With repl == nil this is
// C_t^real; otherwise step t's (observation, refine) pair is replaced by
// *repl, giving C_t^rand. The query of step t is kept either way.
func Context(t protocol.Parsed, step int, repl *Pair) string {
	var b strings.Builder
	b.WriteString(Prefix(t))
	for s := 0; s <= step; s++ {
		st := t.Steps[s]
		pair := StepPair(st)
		if s == step && repl != nil {
			pair = *repl
		}
		b.WriteString("\n")
		b.WriteString(st.SearchBlock)
		b.WriteString("\n")
		b.WriteString(pair.Obs)
		if pair.Refine != "" {
			b.WriteString("\n")
			b.WriteString(pair.Refine)
		}
	}
	return b.String()
}

// sharedLen is the byte length of the part of C_t common to the real and
// every counterfactual context of step t: everything up to and including
// the "\n" after step t's search block.
func sharedLen(t protocol.Parsed, step int) int {
	n := len(Prefix(t))
	for s := 0; s < step; s++ {
		st := t.Steps[s]
		n += 1 + len(st.SearchBlock) + 1 + len(st.ObsBlock)
		if st.RefineBlock != "" {
			n += 1 + len(st.RefineBlock)
		}
	}
	return n + 1 + len(t.Steps[step].SearchBlock) + 1
}
