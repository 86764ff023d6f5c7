package protocol

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/igsearch/igsearch/pipeline/pystr"
)

// Doc is one retrieved passage. Contents is in the wiki-18 / Search-R1
// corpus shape: the title on the first line, the text after it.
type Doc struct {
	ID       string
	Contents string
}

// SplitContents splits a passage's contents into its title (the first line)
// and its text (the remaining lines, joined by "\n"), as _passages2string in
// Search-R1's generation.py.
func SplitContents(contents string) (title, text string) {
	title, text, _ = strings.Cut(contents, "\n")
	return title, text
}

// FormatDocs is Search-R1's _passages2string: one line
// "Doc i(Title: T) text\n" per document, numbered from 1.
func FormatDocs(docs []Doc) string {
	var b strings.Builder
	for i, d := range docs {
		title, text := SplitContents(d.Contents)
		fmt.Fprintf(&b, "Doc %d(Title: %s) %s\n", i+1, title, text)
	}
	return b.String()
}

// ObservationBlock is the observation as it appears between the tags:
// ObsOpen + strip(FormatDocs(docs)) + ObsClose, with Python's str.strip(). The strip drops the final
// "\n", as in Search-R1, so the block ends "…textK</information>".
func (p Protocol) ObservationBlock(docs []Doc) string {
	return p.ObsOpen + pystr.Strip(FormatDocs(docs)) + p.ObsClose
}

// Observation is the text the environment appends after a search turn:
// "\n\n" + ObservationBlock(docs) + "\n\n" (generation.py,
// execute_predictions).
func (p Protocol) Observation(docs []Doc) string {
	return "\n\n" + p.ObservationBlock(docs) + "\n\n"
}

// TokenCounter returns the number of tokens of a text (no special tokens
// added). The rollout passes its tokenizer's count.
type TokenCounter func(text string) int

// TruncatedObservation is Observation(docs) cut to at most maxTokens tokens
// as counted by count (--max-obs-tokens; maxTokens <= 0 disables it). Only
// the documents' text is cut, at the longest rune prefix that fits (found
// by bisection, so count is called O(log n) times); the tags and the
// surrounding "\n\n" are always kept. If even the empty body does not fit,
// the empty body is used.
//
// Search-R1 instead cuts the observation's token ids, which can drop the
// closing tag; keeping it makes the step parseable and the IG context
// well-formed.
func (p Protocol) TruncatedObservation(docs []Doc, maxTokens int, count TokenCounter) string {
	full := p.Observation(docs)
	if maxTokens <= 0 || count(full) <= maxTokens {
		return full
	}
	body := pystr.Strip(FormatDocs(docs))
	wrap := func(s string) string { return "\n\n" + p.ObsOpen + s + p.ObsClose + "\n\n" }
	// Rune boundaries of body; find the largest k with count(wrap(body[:cut[k]])) <= maxTokens.
	cuts := make([]int, 0, utf8.RuneCountInString(body)+1)
	for i := range body {
		cuts = append(cuts, i)
	}
	cuts = append(cuts, len(body))
	lo, hi := 0, len(cuts)-1 // cuts[lo] fits (assumed), cuts[hi] does not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if count(wrap(body[:cuts[mid]])) <= maxTokens {
			lo = mid
		} else {
			hi = mid
		}
	}
	return wrap(body[:cuts[lo]])
}
