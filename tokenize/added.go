package tokenize

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of "added_tokens".
type addedToken struct {
	id         int32
	content    string
	match      string // content, normalised when normalized is set
	special    bool
	lstrip     bool
	rstrip     bool
	normalized bool
	singleWord bool
}

// addedVocab finds added tokens in text: leftmost, then longest match, as
// HF's Aho-Corasick automaton with MatchKind::LeftmostLongest does. Tokens
// with normalized=false are matched in the raw text, the others in the
// normalised pieces between them.
type addedVocab struct {
	tokens []*addedToken
	byText map[string]*addedToken
	raw    tokenMatcher // normalized = false
	norm   tokenMatcher // normalized = true
}

func (v *addedVocab) add(a *addedToken) {
	if v.byText == nil {
		v.byText = make(map[string]*addedToken)
	}
	if old := v.byText[a.content]; old != nil {
		*old = *a // a later entry with the same content replaces the earlier one
		return
	}
	v.byText[a.content] = a
	v.tokens = append(v.tokens, a)
}

func (v *addedVocab) index() {
	var raw, norm []*addedToken
	for _, a := range v.tokens {
		if a.normalized {
			norm = append(norm, a)
		} else {
			raw = append(raw, a)
		}
	}
	v.raw.build(raw)
	v.norm.build(norm)
}

// tokenMatcher is a first-byte index over token patterns, each bucket
// sorted longest first.
type tokenMatcher struct {
	byFirst [256][]*addedToken
	firsts  string // the distinct first bytes
	empty   bool
}

func (m *tokenMatcher) build(list []*addedToken) {
	*m = tokenMatcher{empty: true}
	var firsts []byte
	for _, a := range list {
		if a.match == "" {
			continue
		}
		m.empty = false
		c := a.match[0]
		if len(m.byFirst[c]) == 0 {
			firsts = append(firsts, c)
		}
		m.byFirst[c] = append(m.byFirst[c], a)
	}
	m.firsts = string(firsts)
	for i := range m.byFirst {
		b := m.byFirst[i]
		sort.SliceStable(b, func(x, y int) bool { return len(b[x].match) > len(b[y].match) })
	}
}

// find returns the leftmost-longest match at or after from.
func (m *tokenMatcher) find(s string, from int) (start int, a *addedToken) {
	if m.empty {
		return -1, nil
	}
	for i := from; i < len(s); {
		var k int
		if len(m.firsts) == 1 {
			k = strings.IndexByte(s[i:], m.firsts[0])
		} else {
			k = indexAnyByte(s[i:], m.firsts)
		}
		if k < 0 {
			return -1, nil
		}
		i += k
		for _, a := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], a.match) {
				return i, a
			}
		}
		i++
	}
	return -1, nil
}

func indexAnyByte(s, set string) int {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) >= 0 {
			return i
		}
	}
	return -1
}

// splitAdded cuts s into pieces: added tokens (id >= 0) and the text between
// them (id -1), following HF's AddedVocabulary::find_matches, including its
// single_word, lstrip and rstrip rules. With noSpecial, special tokens are
// passed over as text.
func (m *tokenMatcher) split(s string, noSpecial bool, emit func(text string, id int32)) {
	if m.empty {
		emit(s, -1)
		return
	}
	startOffset := 0
	for from := 0; ; {
		start, a := m.find(s, from)
		if a == nil {
			break
		}
		stop := start + len(a.match)
		from = stop
		if noSpecial && a.special {
			continue
		}
		if a.singleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if a.lstrip {
			start = max(trailingSpaceStart(s[:start]), startOffset)
		}
		if a.rstrip {
			stop += leadingSpaceLen(s[stop:])
		}
		if startOffset < start {
			emit(s[startOffset:start], -1)
		}
		emit(s[start:stop], a.id)
		startOffset = stop
	}
	if startOffset < len(s) {
		emit(s[startOffset:], -1)
	}
}

// isRegexWord is Rust regex's Unicode \w: alphabetic, marks, decimal
// digits, connector punctuation and the join controls.
func isRegexWord(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
	}
	return unicode.In(r, unicode.L, unicode.Nl, unicode.Other_Alphabetic, unicode.M, unicode.Nd, unicode.Pc, unicode.Join_Control)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isRegexWord(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isRegexWord(r)
}

func trailingSpaceStart(s string) int {
	i := len(s)
	for i > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:i])
		if !isSpaceRune(r) {
			break
		}
		i -= n
	}
	return i
}

func leadingSpaceLen(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isSpaceRune(r) {
			break
		}
		i += n
	}
	return i
}
