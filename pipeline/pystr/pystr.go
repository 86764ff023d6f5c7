// Package pystr is the handful of Python str operations that Search-R1's
// Python code (qa_em.py's normalize_answer, generation.py's parsing and
// observation) relies on, written so that Go gives what CPython gives.
// Go's strings.ToLower, strings.Fields and strings.TrimSpace differ from
// str.lower(), str.split() and str.strip() on the characters noted below;
// pystr_test.go checks every code point against python3.
package pystr

import (
	"strings"
	"unicode"
)

// IsSpace is Python's str.isspace() for one character: Go's
// unicode.IsSpace plus the information separators U+001C–U+001F, which
// Python counts as white space (their bidirectional class is B or S).
func IsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// Fields is str.split() with no argument: the runs of non-white-space
// characters.
func Fields(s string) []string { return strings.FieldsFunc(s, IsSpace) }

// Strip is str.strip() with no argument.
func Strip(s string) string { return strings.TrimFunc(s, IsSpace) }

// IsWord reports whether r is a word character (\w) of Python's re module
// on str patterns: str.isalnum() (a letter, or a character with a numeric
// value) or '_'.
func IsWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// Lower is str.lower(): the full lowercase mapping of each character,
// which differs from Go's simple mapping (strings.ToLower) in two places.
//   - U+0130 (İ, capital I with dot above) becomes "i\u0307" (two code
//     points; SpecialCasing.txt), not "i".
//   - U+03A3 (Σ) becomes final sigma ς (U+03C2) when it ends a word in
//     Unicode's Final_Sigma sense, else σ: preceded by a cased letter and not
//     followed by one, skipping case-ignorable characters both ways.
func Lower(s string) string {
	if !strings.ContainsRune(s, 'İ') && !strings.ContainsRune(s, 'Σ') {
		return strings.ToLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range rs {
		switch r {
		case 'İ':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(rs, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is CPython's handle_capital_sigma: rs[i] is in the
// Final_Sigma context \p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}*\p{cased}).
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

// cased is Unicode's derived property Cased: Lu, Ll, Lt, Other_Lowercase
// or Other_Uppercase.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's derived property Case_Ignorable: Mn, Me, Cf,
// Lm or Sk, or Word_Break MidLetter, MidNumLet or Single_Quote (listed
// here; Go's tables do not carry Word_Break).
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xb7, 0x387, 0x55f, 0x5f4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
