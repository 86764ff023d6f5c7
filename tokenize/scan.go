package tokenize

import (
	"unicode"
	"unicode/utf8"
)

// Character classes used by the hand-written pre-tokenizer scanners. They
// follow the regex classes \p{L}, \p{N}, \s (Unicode White_Space) and [\r\n].
const (
	clsL  = 1 << iota // letter, \p{L}
	clsN              // number, \p{N}
	clsS              // white space, \s
	clsNL             // '\r' or '\n' (also has clsS)
)

// asciiClass holds the class bits of each ASCII byte.
var asciiClass = func() (t [128]uint8) {
	for c := 0; c < 128; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = clsL
		case c >= '0' && c <= '9':
			t[c] = clsN
		case c == '\r' || c == '\n':
			t[c] = clsS | clsNL
		case c == ' ', c >= '\t' && c <= '\f':
			t[c] = clsS
		}
	}
	return t
}()

// class returns the class bits of the rune at s[i] and its width. Invalid
// UTF-8 reads as U+FFFD, width 1 (a symbol: no class bit), as in regexp2.
func class(s string, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return runeClass(r), n
}

func runeClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsL
	case unicode.IsNumber(r):
		return clsN
	case unicode.Is(unicode.White_Space, r):
		return clsS
	}
	return 0
}

// span returns the end of the run of runes starting at i whose class shares a
// bit with want.
func span(s string, i int, want uint8) int {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiClass[c]&want == 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if runeClass(r)&want == 0 {
			return i
		}
		i += n
	}
	return i
}

// spanOther returns the end of the run of runes starting at i that are not
// letters, numbers or white space: [^\s\p{L}\p{N}]*.
func spanOther(s string, i int) int {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if asciiClass[c] != 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if runeClass(r) != 0 {
			return i
		}
		i += n
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d after the apostrophe at i-1
// and returns the end, or -1. With fold it matches case-insensitively as
// Unicode simple case folding does (so 'ſ, U+017F, matches like 's).
func contraction(s string, i int, fold bool) int {
	if i >= len(s) {
		return -1
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i]) {
	case 's', 't', 'm', 'd':
		return i + 1
	case 'r':
		if i+1 < len(s) && lower(s[i+1]) == 'e' {
			return i + 2
		}
	case 'v':
		if i+1 < len(s) && lower(s[i+1]) == 'e' {
			return i + 2
		}
	case 'l':
		if i+1 < len(s) && lower(s[i+1]) == 'l' {
			return i + 2
		}
	case 0xC5: // U+017F LATIN SMALL LETTER LONG S is C5 BF
		if fold && i+1 < len(s) && s[i+1] == 0xBF {
			return i + 2
		}
	}
	return -1
}

// wsRun returns the end of the white-space run at i, the start of its last
// rune, and the position of its last '\r' or '\n' (-1 if none).
func wsRun(s string, i int) (end, last, lastNL int) {
	last, lastNL = i, -1
	for i < len(s) {
		c := s[i]
		var cl uint8
		n := 1
		if c < utf8.RuneSelf {
			cl = asciiClass[c]
		} else {
			var r rune
			r, n = utf8.DecodeRuneInString(s[i:])
			cl = runeClass(r)
		}
		if cl&clsS == 0 {
			break
		}
		if cl&clsNL != 0 {
			lastNL = i
		}
		last = i
		i += n
	}
	return i, last, lastNL
}

// nextQwen2 returns the end of the match that starts at i (i < len(s)) of the
// Qwen2 pre-tokenizer pattern, with maxDigits = 1:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// With maxDigits = 3 the third branch is \p{N}{1,3}: the Llama 3 and cl100k
// pattern. Every position starts a match, so successive calls tile s.
func nextQwen2(s string, i, maxDigits int) int {
	c, n := class(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if s[i] == '\'' {
		if e := contraction(s, i+1, true); e > 0 {
			return e
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c&clsL != 0 {
		return span(s, i+n, clsL)
	}
	if c&(clsN|clsNL) == 0 && i+n < len(s) {
		if c2, n2 := class(s, i+n); c2&clsL != 0 {
			return span(s, i+n+n2, clsL)
		}
	}
	// \p{N}{1,maxDigits}
	if c&clsN != 0 {
		j := i + n
		for k := 1; k < maxDigits && j < len(s); k++ {
			c2, n2 := class(s, j)
			if c2&clsN == 0 {
				break
			}
			j += n2
		}
		return j
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	j := i
	if s[i] == ' ' {
		j++
	}
	if j < len(s) {
		if c2, n2 := class(s, j); c2 == 0 {
			j = spanOther(s, j+n2)
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			return j
		}
	}
	// Here s[i] is white space.
	end, last, lastNL := wsRun(s, i)
	// \s*[\r\n]+
	if lastNL >= 0 {
		return lastNL + 1
	}
	// \s+(?!\S)
	if end == len(s) {
		return end
	}
	if last > i {
		return last
	}
	// \s+
	return end
}

// nextGPT2 returns the end of the match that starts at i (i < len(s)) of the
// GPT-2 pattern, the ByteLevel pre-tokenizer's default:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func nextGPT2(s string, i int) int {
	if s[i] == '\'' {
		if e := contraction(s, i+1, false); e > 0 {
			return e
		}
	}
	j := i
	if s[i] == ' ' {
		j++
	}
	if j < len(s) {
		c, n := class(s, j)
		switch {
		case c&clsL != 0:
			return span(s, j+n, clsL)
		case c&clsN != 0:
			return span(s, j+n, clsN)
		case c == 0:
			return spanOther(s, j+n)
		}
	}
	end, last, _ := wsRun(s, i)
	if end == len(s) {
		return end
	}
	if last > i {
		return last
	}
	return end
}
