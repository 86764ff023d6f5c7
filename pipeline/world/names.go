package world

import (
	"math/rand/v2"
	"strings"
)

// Entity names are composed from syllables so that no pretrained knowledge
// can help: two or three syllables, capitalised, one word (one token of the
// word-level vocabulary). Names are unique, never an English word the
// templates use, and unique even after a crude suffix stemming, so that a
// stemming analyzer in the index cannot merge two of them.

var (
	onsets = []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st", "sh", "th", "gl", "vr"}
	vowels = []string{"a", "e", "i", "o", "u", "ai", "ei", "ou", "ia"}
	codas  = []string{"", "", "", "n", "r", "l", "m", "k", "th", "sh", "nd", "rn"}
	// finals end a name; none of them looks like an English suffix.
	finals = []string{"a", "o", "u", "an", "on", "ar", "or", "ul", "ik", "ath", "um", "ak", "ir", "esh", "und", "orn", "ia", "ara", "ova", "eth"}
)

// nameMaker draws unique names.
type nameMaker struct {
	rng      *rand.Rand
	reserved map[string]bool // lower-cased template words
	used     map[string]bool // stem keys of names drawn so far
}

func newNameMaker(rng *rand.Rand, reserved map[string]bool) *nameMaker {
	return &nameMaker{rng: rng, reserved: reserved, used: map[string]bool{}}
}

// next returns a fresh name.
func (m *nameMaker) next() string {
	for {
		var b strings.Builder
		n := 1 + m.rng.IntN(2) // syllables before the final
		for i := 0; i < n; i++ {
			b.WriteString(onsets[m.rng.IntN(len(onsets))])
			b.WriteString(vowels[m.rng.IntN(len(vowels))])
			if i < n-1 {
				b.WriteString(codas[m.rng.IntN(len(codas))])
			}
		}
		b.WriteString(onsets[m.rng.IntN(len(onsets))])
		b.WriteString(finals[m.rng.IntN(len(finals))])
		name := b.String()
		if len(name) < 5 || len(name) > 12 || m.reserved[name] {
			continue
		}
		key := stemKey(name)
		if m.used[key] || m.reserved[key] {
			continue
		}
		m.used[key] = true
		return strings.ToUpper(name[:1]) + name[1:]
	}
}

// stemKey strips endings a stemmer might remove, so two names that differ
// only there count as the same.
func stemKey(s string) string {
	s = strings.ToLower(s)
	for _, suf := range []string{"ia", "a", "o", "u", "e", "i"} {
		if strings.HasSuffix(s, suf) && len(s)-len(suf) >= 3 {
			return s[:len(s)-len(suf)]
		}
	}
	return s
}
