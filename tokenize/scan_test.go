package tokenize

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
)

// scanAtoms are the building blocks of random pre-tokenizer inputs: many
// scripts, every class the patterns distinguish, white-space runs, CRLF and
// contractions.
var scanAtoms = []string{
	"a", "Z", "q", "hello", "World", "é", "ß", "Ω", "жук", "中文", "日本語", "한국어", "ไทย",
	"العربية", "हिन्दी", "ि", "\u0301", "e\u0301", "ǅ", "ʰ", // letters, marks (Mn), Lt, Lm
	"0", "7", "42", "٣", "１２", "Ⅻ", "²", "½", "৪", // Nd, Nl, No
	"'", "'s", "'S", "'t", "'re", "'RE", "'ve", "'Ve", "'m", "'ll", "'LL", "'d", "'D", "'x", "''",
	"don't", "we'LL", "it's",
	" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n ", "\u00a0", "\u3000", "\u2028", "\u2029",
	"\u0085", "\u000b", "\u000c", "\u200b", "\ufeff",
	".", ",", "!?", "(", ")", "{}", "<", ">", "-", "_", "#", "$", "€", "…", "—", "“", "”", "😀", "👍🏽", "🇫🇷",
	"\u200d", "\u00ad", "\x7f", "\x01", "<|im_start|>", "ſ"[:0],
}

func randomScanInput(r *rand.Rand) string {
	var b strings.Builder
	n := 1 + r.IntN(12)
	for range n {
		b.WriteString(scanAtoms[r.IntN(len(scanAtoms))])
	}
	return b.String()
}

// piecesRegexp2 splits s with regexp2's matches (rune offsets → byte offsets).
func piecesRegexp2(t *testing.T, re *regexp2.Regexp, s string) []string {
	t.Helper()
	var out []string
	for _, m := range findRegexp2(re)(s, nil) {
		out = append(out, s[m[0]:m[1]])
	}
	return out
}

func piecesScan(next func(string, int) int, s string) []string {
	var out []string
	scanSplit{next}.split(s, func(p string) { out = append(out, p) })
	return out
}

func TestScannersMatchRegexp2(t *testing.T) {
	cases := []struct {
		name, pattern string
		next          func(string, int) int
	}{
		{"qwen2", PatternQwen2, nextQwen2One},
		{"llama3", PatternLlama3, nextQwen2Three},
		{"gpt2", PatternGPT2, nextGPT2},
	}
	fixed := []string{
		"", "a", " ", "  ", "hello world", "  hello  world  ", "x\r\n\r\ny", "a \n\n b", "\t\tx", "1234567",
		"I'm sure they'll've done it", "DON'T SHOUT", " 'quoted' ", "foo  \n  bar", "trailing   ",
		"tab\tand\u00a0nbsp\u3000ideographic", "emoji😀😀 x", "a.b,c;d", "  ...\r\n\r\n", "\u2028x", "x\u0085y",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			re := regexp2.MustCompile(c.pattern, regexp2.None)
			r := rand.New(rand.NewPCG(1, uint64(len(c.name))))
			inputs := append([]string(nil), fixed...)
			for range 4000 {
				inputs = append(inputs, randomScanInput(r))
			}
			bad := 0
			for _, s := range inputs {
				got, want := piecesScan(c.next, s), piecesRegexp2(t, re, s)
				if strings.Join(got, "") != s {
					t.Fatalf("%q: pieces %q do not tile the input", s, got)
				}
				if !slices.Equal(got, want) {
					if bad++; bad <= 10 {
						t.Errorf("%q:\n scanner %q\n regexp2 %q", s, got, want)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d inputs differ", bad, len(inputs))
			}
		})
	}
}

// TestScannerLongS pins the one place where the scanner deliberately
// differs from regexp2: under (?i), Rust's regex and Oniguruma (which HF
// tokenizers use) match 'ſ (U+017F, whose simple case fold is s) like 's;
// regexp2 does not fold it.
func TestScannerLongS(t *testing.T) {
	got := piecesScan(nextQwen2One, "x'ſy")
	want := []string{"x", "'ſ", "y"}
	if !slices.Equal(got, want) {
		t.Errorf("pieces %q, want %q", got, want)
	}
}
