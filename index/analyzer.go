package index

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/clipperhouse/uax29/v2/words"
)

// Analyzer turns text into index terms. The zero value is not usable; get one
// from NewAnalyzer. An Analyzer is immutable and safe for concurrent use.
type Analyzer struct {
	name string
	// english enables possessive removal, stop words and Porter stemming.
	english bool
}

// Analyzer names accepted by NewAnalyzer.
const (
	// AnalyzerEnglish is Lucene's EnglishAnalyzer as Anserini uses it:
	// UAX#29 word tokens, English possessive removal, lowercase, Lucene's
	// English stop set, original Porter stemmer.
	AnalyzerEnglish = "english"
	// AnalyzerSimple is maximal runs of Unicode letters and digits,
	// lowercased; no stop words and no stemming.
	AnalyzerSimple = "simple"
)

// maxTokenLen is Lucene StandardTokenizer's default maximum token length, in
// characters; longer tokens are split into pieces of this length.
const maxTokenLen = 255

// englishStopWords is Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET.
var englishStopWords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true,
	"be": true, "but": true, "by": true, "for": true, "if": true, "in": true,
	"into": true, "is": true, "it": true, "no": true, "not": true, "of": true,
	"on": true, "or": true, "such": true, "that": true, "the": true,
	"their": true, "then": true, "there": true, "these": true, "they": true,
	"this": true, "to": true, "was": true, "will": true, "with": true,
}

// NewAnalyzer returns the analyzer called name: "english" or "simple".
func NewAnalyzer(name string) (*Analyzer, error) {
	switch name {
	case AnalyzerEnglish:
		return &Analyzer{name: name, english: true}, nil
	case AnalyzerSimple:
		return &Analyzer{name: name}, nil
	}
	return nil, fmt.Errorf("unknown analyzer %q (want %q or %q)", name, AnalyzerEnglish, AnalyzerSimple)
}

// Name returns the analyzer's name as NewAnalyzer accepts it.
func (a *Analyzer) Name() string { return a.name }

// Terms returns the terms of text in order, duplicates included.
func (a *Analyzer) Terms(text string) []string {
	var out []string
	a.Analyze(text, func(t string) { out = append(out, t) })
	return out
}

// Analyze calls emit for each term of text in order. The string passed to
// emit may share memory with text.
func (a *Analyzer) Analyze(text string, emit func(term string)) {
	if !a.english {
		analyzeSimple(text, emit)
		return
	}
	a.analyzeEnglish(text, func(tok string) { emit(stem(tok)) })
}

// tokens calls emit for each token of text before the last, per-token
// stage (stemming); finish applies that stage. Analyze(text) equals finish
// applied to each token, which lets the builder cache finish per token.
func (a *Analyzer) tokens(text string, emit func(tok string)) {
	if a.english {
		a.analyzeEnglish(text, emit)
	} else {
		analyzeSimple(text, emit)
	}
}

// finish turns a token from tokens into its term.
func (a *Analyzer) finish(tok string) string {
	if a.english {
		return stem(tok)
	}
	return tok
}

func analyzeSimple(text string, emit func(string)) {
	start := -1
	for i, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			emitLong(lower(text[start:i]), emit)
			start = -1
		}
	}
	if start >= 0 {
		emitLong(lower(text[start:]), emit)
	}
}

// emitLong splits a token longer than maxTokenLen runes into pieces.
func emitLong(tok string, emit func(string)) {
	for {
		if len(tok) <= maxTokenLen || utf8.RuneCountInString(tok) <= maxTokenLen {
			emit(tok)
			return
		}
		n, i := 0, 0
		for i = range tok {
			if n == maxTokenLen {
				break
			}
			n++
		}
		emit(tok[:i])
		tok = tok[i:]
	}
}

// analyzeEnglish emits the english analyzer's tokens before stemming.
func (a *Analyzer) analyzeEnglish(text string, emit func(string)) {
	it := words.FromString(text)
	for it.Next() {
		tok := it.Value()
		if !isWordToken(tok) {
			continue
		}
		emitLong(tok, func(t string) {
			t = lower(removePossessive(t))
			if t == "" || englishStopWords[t] {
				return
			}
			emit(t)
		})
	}
}

// stem applies the Porter stemmer to a lowercased term.
func stem(t string) string {
	if len(t) <= 2 {
		return t
	}
	return porterStem(t)
}

// isWordToken reports whether a UAX#29 segment is a token that Lucene's
// StandardTokenizer emits: one that holds a letter or a digit (whitespace,
// punctuation and symbol segments are dropped).
func isWordToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				return true
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			return true
		}
		i += n - 1
	}
	return false
}

// removePossessive is Lucene's EnglishPossessiveFilter: a trailing 's (with
// an ASCII apostrophe, U+2019 or U+FF07) is removed.
func removePossessive(t string) string {
	n := len(t)
	if n < 2 || (t[n-1] != 's' && t[n-1] != 'S') {
		return t
	}
	rest := t[:n-1]
	switch {
	case strings.HasSuffix(rest, "'"):
		return rest[:len(rest)-1]
	case strings.HasSuffix(rest, "\u2019"):
		return rest[:len(rest)-len("\u2019")]
	case strings.HasSuffix(rest, "\uff07"):
		return rest[:len(rest)-len("\uff07")]
	}
	return t
}

// lower lowercases s rune by rune (Lucene's LowerCaseFilter), without
// allocating when s is already lowercase ASCII.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return lowerSlow(s)
		}
	}
	return s
}

func lowerSlow(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
