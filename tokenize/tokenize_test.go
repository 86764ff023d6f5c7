package tokenize

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// expectedRoundTrip is what decoding the encoding of s gives: the text with
// each piece between added tokens NFC-normalised on its own, as HF does.
func expectedRoundTrip(tok *Tokenizer, s string, noSpecial bool) string {
	var b strings.Builder
	tok.added.raw.split(s, noSpecial, func(p string, id int32) {
		if id >= 0 {
			b.WriteString(p)
		} else {
			b.WriteString(norm.NFC.String(p))
		}
	})
	return b.String()
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{
		"", "hello world", "  x\r\n\r\n y  ", "e\u0301 ñ Å", "中文 العربية हिन्दी", "😀👍🏽🇫🇷",
		"I'm sure they'LL've", "<|im_start|>user\nhi<|im_end|>", "<tool_call>x</tool_call>",
		"\u00a0\u3000\u2028", "1234567890", "func main() {\n\tfmt.Println(\"hi\")\n}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip()
		}
		tok := loadQwen(t)
		for _, noSpecial := range []bool{false, true} {
			ids := tok.AppendEncode(nil, s, noSpecial)
			if got, want := tok.Decode(ids, false), expectedRoundTrip(tok, s, noSpecial); got != want {
				t.Fatalf("noSpecial=%v: decode(encode(%q)) = %q, want %q", noSpecial, s, got, want)
			}
		}
	})
}

func TestRoundTripRandom(t *testing.T) {
	tok := loadQwen(t)
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		s := randomScanInput(r)
		if got, want := tok.Decode(tok.Encode(s), false), expectedRoundTrip(tok, s, false); got != want {
			t.Fatalf("decode(encode(%q)) = %q, want %q", s, got, want)
		}
	}
}

func TestQwenAPI(t *testing.T) {
	tok := loadQwen(t)
	if got := tok.VocabSize(); got != 151665 {
		t.Errorf("VocabSize = %d, want 151665", got)
	}
	if got := tok.EOSIDs(); !slices.Equal(got, []int32{151645, 151643}) {
		t.Errorf("EOSIDs = %v", got)
	}
	for tokStr, want := range map[string]int32{"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<tool_call>": 151657, "Ġthe": 279, "!": 0} {
		id, ok := tok.TokenID(tokStr)
		if !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", tokStr, id, ok, want)
		}
		if s, ok := tok.IDToken(want); !ok || s != tokStr {
			t.Errorf("IDToken(%d) = %q, %v; want %q", want, s, ok, tokStr)
		}
	}
	if _, ok := tok.TokenID("no such token"); ok {
		t.Error("TokenID of a missing token reports ok")
	}
	if _, ok := tok.IDToken(999999); ok {
		t.Error("IDToken out of range reports ok")
	}
	if !tok.IsSpecial(151645) || tok.IsSpecial(151657) || tok.IsSpecial(279) {
		t.Error("IsSpecial wrong")
	}
	if got := len(tok.SpecialIDs()); got != 14 {
		t.Errorf("%d special ids, want 14", got)
	}
}

func TestQwenSpecialTokens(t *testing.T) {
	tok := loadQwen(t)
	text := "<|im_start|>user\nhi<|im_end|>"
	ids := tok.Encode(text)
	if ids[0] != 151644 || ids[len(ids)-1] != 151645 {
		t.Fatalf("Encode(%q) = %v: want the special ids at both ends", text, ids)
	}
	plain := tok.EncodeNoSpecial(text)
	if slices.Contains(plain, 151644) || slices.Contains(plain, 151645) {
		t.Fatalf("EncodeNoSpecial(%q) = %v contains special ids", text, plain)
	}
	if got := tok.Decode(plain, false); got != text {
		t.Errorf("decode of no-special encoding = %q", got)
	}
	// Non-special added tokens are still recognised.
	if got := tok.EncodeNoSpecial("<tool_call>"); !slices.Equal(got, []int32{151657}) {
		t.Errorf("EncodeNoSpecial(<tool_call>) = %v", got)
	}
	if got := tok.Decode(ids, true); got != "user\nhi" {
		t.Errorf("Decode(skipSpecial) = %q", got)
	}
	if got := tok.Decode(append(ids, -1, 1<<30), false); got != text {
		t.Errorf("Decode with out-of-range ids = %q", got)
	}
}

func TestEncodeBatch(t *testing.T) {
	tok := loadQwen(t)
	rows := loadVectors(t)
	texts := make([]string, 0, 4*len(rows))
	for range 4 {
		for _, r := range rows {
			texts = append(texts, r.Text)
		}
	}
	got := tok.EncodeBatch(texts, false)
	for i, s := range texts {
		if !slices.Equal(got[i], rows[i%len(rows)].IDs) {
			t.Fatalf("EncodeBatch[%d] differs from the vector for %q", i, s)
		}
	}
	if len(tok.EncodeBatch(nil, false)) != 0 {
		t.Error("EncodeBatch(nil) not empty")
	}
}

// TestMergeLongAgrees checks the heap merge used for long words against the
// quadratic one on the same symbols.
func TestMergeLongAgrees(t *testing.T) {
	tok := loadQwen(t)
	b := tok.bpe
	r := rand.New(rand.NewPCG(3, 4))
	words := []string{" the", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "                                ", "hello", "internationalization"}
	for range 3000 {
		words = append(words, strings.ReplaceAll(randomScanInput(r), " ", ""))
	}
	for _, w := range words {
		if len(w) > maxShortWord {
			w = w[:maxShortWord]
		}
		syms := make([]int32, len(w))
		for i := range len(w) {
			syms[i] = b.byteID[w[i]]
		}
		short := b.mergeShort(slices.Clone(syms))
		long := b.mergeLong(slices.Clone(syms))
		if !slices.Equal(short, long) {
			t.Fatalf("%q: short merge %v, heap merge %v", w, short, long)
		}
	}
	// A long word goes through the heap merge and round-trips.
	long := strings.Repeat("abcdefghij", 50) + strings.Repeat("ab", 40)
	if got := tok.Decode(tok.Encode(long), false); got != long {
		t.Errorf("long word does not round-trip")
	}
}

func TestStreamingDecoder(t *testing.T) {
	tok := loadQwen(t)
	// One token per byte splits every multi-byte character across tokens.
	text := "é中😀x"
	var ids []int32
	for i := 0; i < len(text); i++ {
		id, ok := tok.TokenID(string(byteToRune[text[i]]))
		if !ok {
			t.Fatalf("no token for byte %#x", text[i])
		}
		ids = append(ids, id)
	}
	d := tok.NewDecoder(false)
	var steps []string
	for _, id := range ids {
		steps = append(steps, d.Step(id))
	}
	want := []string{"", "é", "", "", "中", "", "", "", "😀", "x"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %q, want %q", steps, want)
	}
	if rest := d.Flush(); rest != "" {
		t.Errorf("Flush = %q", rest)
	}
	// An unfinished character comes out of Flush as U+FFFD.
	d.Reset()
	if got := d.Step(ids[2]) + d.Step(ids[3]); got != "" {
		t.Errorf("partial steps gave %q", got)
	}
	if got := d.Flush(); got != "\uFFFD" {
		t.Errorf("Flush of a partial character = %q", got)
	}
	// Random id streams: Steps + Flush always equal Decode.
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		n := 1 + r.IntN(20)
		seq := make([]int32, n)
		for i := range seq {
			if r.IntN(3) == 0 {
				seq[i] = ids[r.IntN(len(ids))]
			} else {
				seq[i] = int32(r.IntN(tok.VocabSize()))
			}
		}
		for _, skip := range []bool{false, true} {
			d := tok.NewDecoder(skip)
			var b strings.Builder
			for _, id := range seq {
				s := d.Step(id)
				if !utf8.ValidString(s) {
					t.Fatalf("Step gave invalid UTF-8 %q", s)
				}
				b.WriteString(s)
			}
			b.WriteString(d.Flush())
			if want := tok.Decode(seq, skip); b.String() != want {
				t.Fatalf("ids %v: streamed %q, Decode %q", seq, b.String(), want)
			}
		}
	}
}

func TestAppendLossy(t *testing.T) {
	// Expected values are Rust's String::from_utf8_lossy.
	cases := map[string]string{
		"a\xffb":             "a\uFFFDb",
		"\xe2\x82":           "\uFFFD",
		"\xe2\x82x":          "\uFFFDx",
		"\xf0\x9f\x98":       "\uFFFD",
		"\xed\xa0\x80":       "\uFFFD\uFFFD\uFFFD", // a surrogate: ED is followed by A0, outside 80..9F
		"\xc0\xaf":           "\uFFFD\uFFFD",
		"\xf4\x90\x80\x80":   "\uFFFD\uFFFD\uFFFD\uFFFD",
		"\xe0\x80":           "\uFFFD\uFFFD",
		"ok\xf0\x9f\x98\x80": "ok😀",
	}
	for in, want := range cases {
		if got := string(appendLossy(nil, []byte(in))); got != want {
			t.Errorf("lossy(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChatFormat(t *testing.T) {
	sys := "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
	cases := []struct {
		tmpl ChatTemplate
		msgs []Message
		gen  bool
		want string
	}{
		{ChatQwen, []Message{{"user", "Who wrote Hamlet?"}}, true,
			sys + "<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n<|im_start|>assistant\n"},
		{ChatQwen, []Message{{"user", "Hi"}}, false,
			sys + "<|im_start|>user\nHi<|im_end|>\n"},
		{ChatQwen, []Message{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}}, true,
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"},
		{ChatQwen, nil, true, sys + "<|im_start|>assistant\n"},
		{ChatPlain, []Message{{"user", "Answer the question."}}, true, "Answer the question."},
		{ChatPlain, []Message{{"system", "A"}, {"user", "B"}}, false, "A\nB"},
	}
	for i, c := range cases {
		if got := c.tmpl.Format(c.msgs, c.gen); got != c.want {
			t.Errorf("case %d: got %q\nwant %q", i, got, c.want)
		}
	}
	for _, name := range []string{"qwen", "plain"} {
		c, err := ParseChatTemplate(name)
		if err != nil || c.String() != name {
			t.Errorf("ParseChatTemplate(%q) = %v, %v", name, c, err)
		}
	}
	if _, err := ParseChatTemplate("jinja"); err == nil {
		t.Error("ParseChatTemplate accepts an unknown name")
	}
	// The markers encode as their special tokens.
	tok := loadQwen(t)
	ids := tok.Encode(ChatQwen.Format([]Message{{"user", "Hi"}}, true))
	if ids[0] != 151644 || ids[len(ids)-3] != 151644 || !slices.Contains(ids, 151645) {
		t.Errorf("chat prompt ids %v", ids)
	}
}

// writeJSON writes a tokenizer.json into a temporary directory.
func writeJSON(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMalformed(t *testing.T) {
	const bpeHead = `{"added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "decoder": {"type": "ByteLevel"}, `
	cases := []struct {
		name, body string
		want       []string // substrings of the error
	}{
		{"bad JSON", `{"model": {"type": "BPE", "vocab": {"a": 0,}}}`, []string{"model.vocab", "invalid JSON", "line 1"}},
		{"truncated", `{"model": {"type": "BPE", "vocab": {"a": 0}`, []string{"model", "invalid JSON"}},
		{"not an object", `[1, 2]`, []string{"invalid JSON"}},
		{"unknown model type", `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`, []string{"model.type", `"Unigram"`, "not supported"}},
		{"no model", `{"added_tokens": []}`, []string{"model", "missing"}},
		{"merge with a missing token", bpeHead + `"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]}}`, []string{"model.merges[1]", `"c"`, "not in model.vocab"}},
		{"merge result missing", bpeHead + `"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}`, []string{"model.merges[0]", `"ab"`}},
		{"merge not a pair", bpeHead + `"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}}`, []string{"model.merges[0]"}},
		{"vocab id not a number", `{"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}}`, []string{`model.vocab["a"]`}},
		{"unknown normalizer", `{"normalizer": {"type": "Precompiled"}, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}`, []string{"normalizer.type", "Precompiled"}},
		{"unknown pre-tokenizer", `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Metaspace"}]}, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}`, []string{"pre_tokenizer.pretokenizers[0].type", "Metaspace"}},
		{"bad split behaviour", `{"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}`, []string{"pre_tokenizer.behavior"}},
		{"unknown decoder", `{"decoder": {"type": "WordPiece"}, "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}`, []string{"decoder.type", "WordPiece"}},
		{"word level without unk", `{"model": {"type": "WordLevel", "vocab": {"a": 0}}}`, []string{"model.unk_token"}},
		{"unk not in vocab", `{"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "[UNK]"}}`, []string{"model.unk_token", "[UNK]"}},
		{"added token without id", `{"added_tokens": [{"content": "<s>"}], "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}`, []string{"added_tokens[0].id"}},
		{"byte fallback", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}}`, []string{"model.byte_fallback"}},
		{"bad option type", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "fuse_unk": "yes"}}`, []string{"model.fuse_unk"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeJSON(t, c.body)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			for _, w := range append(c.want, p) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}
