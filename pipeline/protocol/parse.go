package protocol

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// MinObsChars is the least number of characters (runes) an observation must
// hold inside its tags, after trimming white space, to count as a real
// observation for IG (ig_reward.py skips shorter ones as empty/malformed).
const MinObsChars = 10

// Span is a half-open byte range [Start, End) of the response text. A span
// with Start < 0 is absent.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// absent is the Span of a missing block.
var absent = Span{-1, -1}

// Ok reports whether the span is present.
func (s Span) Ok() bool { return s.Start >= 0 }

// Step is one search step of a response: a search followed by the
// environment's observation and, for AutoRefine, the model's refine block.
// Steps are numbered from 0 in response order.
type Step struct {
	// Think is the inner text of the <think> blocks written between the
	// previous step and this step's search, trimmed and joined by "\n". An
	// unclosed <think> runs to the search.
	Think string
	// Search is the last complete <search>…</search> block before the
	// observation (and after the previous one); absent if there is none. A
	// "</search>" pairs with the nearest "<search>" before it.
	Search Span
	// SearchBlock is the text of Search, or "<search>query</search>" when
	// absent (the fallback of ig_reward.py).
	SearchBlock string
	// Query is the trimmed text inside the search tags.
	Query string
	// Obs is the complete observation block, tags included.
	Obs Span
	// ObsBlock is the text of Obs.
	ObsBlock string
	// Refine is the refine block of AutoRefine: the first <refine> after the
	// observation and before the next one; it ends at </refine>, or, when
	// that is missing or comes later, at the next "\n\s*<search>" or
	// "\n\s*<answer>", or at the end of the text. Absent for Search-R1.
	Refine Span
	// RefineBlock is the text of Refine; an unclosed refine is normalised to
	// "<refine>" + trimmed inner text + "</refine>" as in ig_reward.py.
	RefineBlock string
}

// ObsContent is the observation's text inside its tags, trimmed.
func (s Step) ObsContent(p Protocol) string {
	inner := strings.TrimPrefix(s.ObsBlock, p.ObsOpen)
	inner = strings.TrimSuffix(inner, p.ObsClose)
	return strings.TrimSpace(inner)
}

// HasObservation reports whether the observation holds at least
// MinObsChars characters inside its tags; IG skips steps without one.
func (s Step) HasObservation(p Protocol) bool {
	return utf8.RuneCountInString(s.ObsContent(p)) >= MinObsChars
}

// Parsed is a response split into its search steps.
type Parsed struct {
	Protocol Protocol
	// Prompt and Response are the texts that were parsed; all spans index
	// Response. Prompt is everything before the assistant's first token.
	Prompt, Response string
	// FirstSearch is the byte offset in Response of the first "<search>",
	// or -1.
	FirstSearch int
	// Steps are the search steps with a complete observation block, in
	// order. An unclosed observation (a cut-off text) ends the parse.
	Steps []Step
	// Answer is the trimmed content of the last complete <answer>…</answer>;
	// HasAnswer reports whether there is one.
	Answer    string
	HasAnswer bool
}

var (
	reNewlineSearch = regexp.MustCompile(`\n\s*<search>`)
	reNewlineAnswer = regexp.MustCompile(`\n\s*<answer>`)
)

// scanner finds tags in a response while skipping the environment's
// correction messages, whose literal tags are not the model's.
type scanner struct {
	s    string
	skip []Span
}

func newScanner(s string) scanner {
	sc := scanner{s: s}
	for from := 0; ; {
		i := strings.Index(s[from:], CorrectionMessage)
		if i < 0 {
			break
		}
		sc.skip = append(sc.skip, Span{from + i, from + i + len(CorrectionMessage)})
		from += i + len(CorrectionMessage)
	}
	return sc
}

// index returns the first position >= from where tag starts outside the
// skipped regions, or -1.
func (sc scanner) index(tag string, from int) int {
	for from <= len(sc.s) {
		i := strings.Index(sc.s[from:], tag)
		if i < 0 {
			return -1
		}
		at := from + i
		inside := false
		for _, sp := range sc.skip {
			if at >= sp.Start && at < sp.End {
				inside, from = true, sp.End
				break
			}
		}
		if !inside {
			return at
		}
	}
	return -1
}

// blocks returns the complete open…close blocks that end by `to`, left to
// right, starting from `from`. Each close pairs with the nearest open before
// it, so an unclosed open (a broken turn) does not swallow the next block.
func (sc scanner) blocks(open, close string, from, to int) []Span {
	var out []Span
	for {
		i := sc.index(open, from)
		if i < 0 || i >= to {
			return out
		}
		j := sc.index(close, i+len(open))
		if j < 0 || j+len(close) > to {
			return out
		}
		for k := sc.index(open, i+len(open)); k >= 0 && k+len(open) <= j; k = sc.index(open, k+len(open)) {
			i = k
		}
		out = append(out, Span{i, j + len(close)})
		from = j + len(close)
	}
}

// Parse splits a response into its search steps. It never fails: unclosed
// and stray tags are tolerated as documented on Step, and tags inside
// CorrectionMessage are ignored.
func Parse(p Protocol, prompt, response string) Parsed {
	sc := newScanner(response)
	out := Parsed{Protocol: p, Prompt: prompt, Response: response, FirstSearch: sc.index(SearchOpen, 0)}

	// Observation blocks.
	var obs []Span
	for from := 0; ; {
		i := sc.index(p.ObsOpen, from)
		if i < 0 {
			break
		}
		j := sc.index(p.ObsClose, i+len(p.ObsOpen))
		if j < 0 {
			break
		}
		obs = append(obs, Span{i, j + len(p.ObsClose)})
		from = j + len(p.ObsClose)
	}

	prevEnd := 0
	for k, o := range obs {
		st := Step{Search: absent, Refine: absent, Obs: o, ObsBlock: response[o.Start:o.End]}
		searches := sc.blocks(SearchOpen, SearchClose, prevEnd, o.Start)
		thinkEnd := o.Start
		if n := len(searches); n > 0 {
			st.Search = searches[n-1]
			st.SearchBlock = response[st.Search.Start:st.Search.End]
			st.Query = strings.TrimSpace(st.SearchBlock[len(SearchOpen) : len(st.SearchBlock)-len(SearchClose)])
			thinkEnd = st.Search.Start
		} else {
			st.SearchBlock = SearchOpen + "query" + SearchClose
		}
		st.Think = thinkText(sc, prevEnd, thinkEnd)
		next := len(response)
		if k+1 < len(obs) {
			next = obs[k+1].Start
		}
		if p.Refine {
			st.Refine, st.RefineBlock = refineBlock(sc, o.End, next)
		}
		prevEnd = o.End
		if st.Refine.Ok() && st.Refine.End > prevEnd {
			prevEnd = st.Refine.End
		}
		if prevEnd > next {
			prevEnd = next
		}
		out.Steps = append(out.Steps, st)
	}

	if ans := sc.blocks(AnswerOpen, AnswerClose, 0, len(response)); len(ans) > 0 {
		a := ans[len(ans)-1]
		out.Answer = strings.TrimSpace(response[a.Start+len(AnswerOpen) : a.End-len(AnswerClose)])
		out.HasAnswer = true
	}
	return out
}

// thinkText joins the trimmed inner texts of the think blocks in [from, to);
// a final unclosed <think> runs to `to`.
func thinkText(sc scanner, from, to int) string {
	var parts []string
	for from < to {
		i := sc.index(ThinkOpen, from)
		if i < 0 || i >= to {
			break
		}
		start := i + len(ThinkOpen)
		j := sc.index(ThinkClose, start)
		if j < 0 || j+len(ThinkClose) > to {
			parts = append(parts, strings.TrimSpace(sc.s[start:to]))
			break
		}
		parts = append(parts, strings.TrimSpace(sc.s[start:j]))
		from = j + len(ThinkClose)
	}
	return strings.Join(parts, "\n")
}

// refineBlock finds the refine block after an observation ending at from
// and before `next` (the next observation or the end of the text).
func refineBlock(sc scanner, from, next int) (Span, string) {
	s := sc.s
	i := sc.index(RefineOpen, from)
	if i < 0 || i >= next {
		return absent, ""
	}
	content := i + len(RefineOpen)
	rest := s[content:]
	end := len(rest)
	if j := strings.Index(rest, RefineClose); j >= 0 {
		end = min(end, j+len(RefineClose))
	}
	if m := reNewlineSearch.FindStringIndex(rest); m != nil {
		end = min(end, m[0])
	}
	if m := reNewlineAnswer.FindStringIndex(rest); m != nil {
		end = min(end, m[0])
	}
	sp := Span{i, content + end}
	block := s[sp.Start:sp.End]
	if !strings.HasSuffix(strings.TrimRightFunc(block, isSpace), RefineClose) {
		block = RefineOpen + strings.TrimSpace(s[content:sp.End]) + RefineClose
	}
	return sp, block
}

func isSpace(r rune) bool { return strings.TrimSpace(string(r)) == "" }

// AssistantStart returns the byte offset just after the first
// "<|im_start|>assistant\n" in a full chat text, or 0 if there is none (the
// rule of ig_reward.py). Use it to split a logged text that has no separate
// prompt.
func AssistantStart(full string) int {
	const marker = "<|im_start|>assistant\n"
	if i := strings.Index(full, marker); i >= 0 {
		return i + len(marker)
	}
	return 0
}
