package tokenize

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// The split patterns that have hand-written scanners, as they appear in
// tokenizer.json files.
const (
	// PatternQwen2 is the Qwen2 (and Qwen2.5, Qwen3) pre-tokenizer regex.
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternLlama3 is PatternQwen2 with up to three digits per piece
	// (Llama 3, tiktoken cl100k).
	PatternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternGPT2 is the GPT-2 pattern, used by the ByteLevel pre-tokenizer
	// when use_regex is true.
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// splitter is one pre-tokenizer step: it cuts s into pieces and passes each
// non-empty piece, in order, to emit.
type splitter interface {
	split(s string, emit func(string))
}

// scanSplit is Split(Regex, Isolated) for a pattern with a hand-written
// scanner: next returns the end of the match starting at i, and matches tile
// the input, so the pieces are exactly the matches.
type scanSplit struct {
	next func(s string, i int) int
}

func (p scanSplit) split(s string, emit func(string)) {
	for i := 0; i < len(s); {
		j := p.next(s, i)
		emit(s[i:j])
		i = j
	}
}

func nextQwen2One(s string, i int) int   { return nextQwen2(s, i, 1) }
func nextQwen2Three(s string, i int) int { return nextQwen2(s, i, 3) }

// splitBehavior is HF's SplitDelimiterBehavior.
type splitBehavior int

const (
	behaviorIsolated splitBehavior = iota
	behaviorRemoved
	behaviorMergedWithPrevious
	behaviorMergedWithNext
	behaviorContiguous
)

var behaviors = map[string]splitBehavior{
	"Isolated":           behaviorIsolated,
	"Removed":            behaviorRemoved,
	"MergedWithPrevious": behaviorMergedWithPrevious,
	"MergedWithNext":     behaviorMergedWithNext,
	"Contiguous":         behaviorContiguous,
}

// segment is a piece of the input and whether it was a match.
type segment struct {
	start, end int
	match      bool
}

// matchSplit is the general Split: find matches of a pattern, then apply the
// behaviour. find appends the [start, end) of each non-empty match.
type matchSplit struct {
	find     func(s string, dst [][2]int) [][2]int
	behavior splitBehavior
	invert   bool
}

func (p matchSplit) split(s string, emit func(string)) {
	var buf [16][2]int
	matches := p.find(s, buf[:0])
	segs := make([]segment, 0, 2*len(matches)+1)
	at := 0
	for _, m := range matches {
		if m[0] > at {
			segs = append(segs, segment{at, m[0], p.invert})
		}
		segs = append(segs, segment{m[0], m[1], !p.invert})
		at = m[1]
	}
	if at < len(s) {
		segs = append(segs, segment{at, len(s), p.invert})
	}
	for _, g := range applyBehavior(segs, p.behavior) {
		if g.end > g.start {
			emit(s[g.start:g.end])
		}
	}
}

// applyBehavior merges or drops segments as HF's NormalizedString::split does.
func applyBehavior(segs []segment, b splitBehavior) []segment {
	var out []segment
	prevMatch := false
	switch b {
	case behaviorIsolated:
		return segs
	case behaviorRemoved:
		for _, g := range segs {
			if !g.match {
				out = append(out, g)
			}
		}
	case behaviorMergedWithPrevious:
		for _, g := range segs {
			if g.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = g.end
			} else {
				out = append(out, g)
			}
			prevMatch = g.match
		}
	case behaviorContiguous:
		for i, g := range segs {
			if i > 0 && g.match == prevMatch {
				out[len(out)-1].end = g.end
			} else {
				out = append(out, g)
			}
			prevMatch = g.match
		}
	case behaviorMergedWithNext:
		for i := len(segs) - 1; i >= 0; i-- {
			g := segs[i]
			if g.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = g.start
			} else {
				out = append(out, g)
			}
			prevMatch = g.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// findLiteral returns a find function for Split(String).
func findLiteral(lit string) func(s string, dst [][2]int) [][2]int {
	return func(s string, dst [][2]int) [][2]int {
		if lit == "" {
			return dst
		}
		for at := 0; ; {
			k := strings.Index(s[at:], lit)
			if k < 0 {
				return dst
			}
			dst = append(dst, [2]int{at + k, at + k + len(lit)})
			at += k + len(lit)
		}
	}
}

// findScan returns a find function from a tiling scanner.
func findScan(next func(s string, i int) int) func(s string, dst [][2]int) [][2]int {
	return func(s string, dst [][2]int) [][2]int {
		for i := 0; i < len(s); {
			j := next(s, i)
			dst = append(dst, [2]int{i, j})
			i = j
		}
		return dst
	}
}

// findRegexp2 is the slow path for patterns without a scanner. regexp2
// reports rune offsets; they are converted back to byte offsets.
func findRegexp2(re *regexp2.Regexp) func(s string, dst [][2]int) [][2]int {
	return func(s string, dst [][2]int) [][2]int {
		runes := []rune(s)
		// byteAt[k] is the byte offset of rune k.
		byteAt := make([]int, len(runes)+1)
		b := 0
		for i := 0; i < len(s); {
			_, n := utf8.DecodeRuneInString(s[i:])
			byteAt[b] = i
			b++
			i += n
		}
		byteAt[len(runes)] = len(s)
		m, _ := re.FindRunesMatch(runes)
		for m != nil {
			if m.Length > 0 {
				dst = append(dst, [2]int{byteAt[m.Index], byteAt[m.Index+m.Length]})
			}
			m, _ = re.FindNextMatch(m)
		}
		return dst
	}
}

// whitespaceSplit is the Whitespace pre-tokenizer, \w+|[^\w\s]+ keeping the
// matches, with \w as in Oniguruma: letters, marks, numbers and connector
// punctuation.
type whitespaceSplit struct{}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.Pc)
}

func isSpaceRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&clsS != 0
	}
	return unicode.Is(unicode.White_Space, r)
}

func (whitespaceSplit) split(s string, emit func(string)) {
	// 0: white space, 1: word, 2: other.
	kind := func(r rune) int {
		switch {
		case isWordRune(r):
			return 1
		case isSpaceRune(r):
			return 0
		}
		return 2
	}
	start, cur := 0, 0
	for i, r := range s {
		k := kind(r)
		if k != cur {
			if cur != 0 && i > start {
				emit(s[start:i])
			}
			start, cur = i, k
		}
	}
	if cur != 0 && len(s) > start {
		emit(s[start:])
	}
}

// whitespaceOnlySplit is the WhitespaceSplit pre-tokenizer: split on white
// space and drop it.
type whitespaceOnlySplit struct{}

func (whitespaceOnlySplit) split(s string, emit func(string)) {
	for _, f := range strings.FieldsFunc(s, isSpaceRune) {
		emit(f)
	}
}

// prefixSpace is ByteLevel's add_prefix_space: a piece that does not start
// with a space gets one.
type prefixSpace struct{}

func (prefixSpace) split(s string, emit func(string)) {
	if strings.HasPrefix(s, " ") {
		emit(s)
		return
	}
	emit(" " + s)
}

// buildPreTokenizer reads the "pre_tokenizer" section into t.splitters and
// t.byteLevel.
func (t *Tokenizer) buildPreTokenizer(raw string) error {
	c, err := parseComponent(raw, "pre_tokenizer")
	if err != nil || c == nil {
		return err
	}
	if c.Type == "Sequence" {
		for i, sub := range c.Pretokenizers {
			if t.byteLevel {
				return fmt.Errorf("pre_tokenizer.pretokenizers[%d]: ByteLevel must be the last pre-tokenizer", i-1)
			}
			field := fmt.Sprintf("pre_tokenizer.pretokenizers[%d]", i)
			sc, err := parseComponent(string(sub), field)
			if err != nil {
				return err
			}
			if sc == nil || sc.Type == "Sequence" {
				return fmt.Errorf("%s: a nested Sequence or null is not supported", field)
			}
			if err := t.addPreTokenizer(sc, field); err != nil {
				return err
			}
		}
		return nil
	}
	return t.addPreTokenizer(c, "pre_tokenizer")
}

func (t *Tokenizer) addPreTokenizer(c *componentJSON, field string) error {
	switch c.Type {
	case "Split":
		return t.addSplit(c, field)
	case "ByteLevel":
		t.byteLevel = true
		if c.AddPrefixSpace {
			t.splitters = append(t.splitters, prefixSpace{})
		}
		if c.UseRegex == nil || *c.UseRegex {
			t.splitters = append(t.splitters, scanSplit{nextGPT2})
		}
		return nil
	case "Whitespace":
		t.splitters = append(t.splitters, whitespaceSplit{})
		return nil
	case "WhitespaceSplit":
		t.splitters = append(t.splitters, whitespaceOnlySplit{})
		return nil
	}
	return fmt.Errorf("%s.type: %q is not supported (Sequence, Split, ByteLevel, Whitespace, WhitespaceSplit)", field, c.Type)
}

func (t *Tokenizer) addSplit(c *componentJSON, field string) error {
	b, ok := behaviors[c.Behavior]
	if !ok {
		return fmt.Errorf("%s.behavior: %q is not a split behaviour", field, c.Behavior)
	}
	if c.Pattern == nil || (c.Pattern.Regex == nil) == (c.Pattern.String == nil) {
		return fmt.Errorf("%s.pattern: want {\"Regex\": ...} or {\"String\": ...}", field)
	}
	if c.Pattern.String != nil {
		t.splitters = append(t.splitters, matchSplit{findLiteral(*c.Pattern.String), b, c.Invert})
		return nil
	}
	var next func(string, int) int
	switch *c.Pattern.Regex {
	case PatternQwen2:
		next = nextQwen2One
	case PatternLlama3:
		next = nextQwen2Three
	case PatternGPT2:
		next = nextGPT2
	}
	if next != nil {
		if b == behaviorIsolated && !c.Invert {
			t.splitters = append(t.splitters, scanSplit{next})
		} else {
			t.splitters = append(t.splitters, matchSplit{findScan(next), b, c.Invert})
		}
		return nil
	}
	re, err := regexp2.Compile(*c.Pattern.Regex, regexp2.None)
	if err != nil {
		return fmt.Errorf("%s.pattern.Regex: %w", field, err)
	}
	t.splitters = append(t.splitters, matchSplit{findRegexp2(re), b, c.Invert})
	return nil
}
