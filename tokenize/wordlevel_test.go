package tokenize

import (
	"fmt"
	"slices"
	"testing"
)

func TestWordLevel(t *testing.T) {
	tok, err := Load("../testdata/tokenize/wordlevel-tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	text := "<|im_start|>user\nWho wrote hamlet?<|im_end|>\n<|im_start|>assistant\n<search> who wrote hamlet </search><information>Doc 1(Title: Hamlet)</information><answer>william shakespeare</answer><|endoftext|>"
	want := []int32{
		2, 4, 0, 8, 9, 10, 3, // "Who" is not in the vocabulary: no normalizer lower-cases it
		2, 5,
		20, 7, 8, 9, 21,
		22, 0, 16, 17, 0, 19, 0, 18, 23, // Doc, Title, Hamlet → unk
		24, 12, 11, 25, 1,
	}
	got := tok.Encode(text)
	if !slices.Equal(got, want) {
		t.Fatalf("Encode:\n got %v\nwant %v", got, want)
	}
	// Without a decoder, HF joins the token strings with spaces.
	if dec := tok.Decode([]int32{2, 4, 7, 8, 9, 10, 3}, false); dec != "<|im_start|> user who wrote hamlet ? <|im_end|>" {
		t.Errorf("Decode = %q", dec)
	}
	if dec := tok.Decode([]int32{2, 4, 7, 8, 9, 10, 3}, true); dec != "user who wrote hamlet ?" {
		t.Errorf("Decode(skipSpecial) = %q", dec)
	}
	d := tok.NewDecoder(true)
	var s string
	for _, id := range []int32{2, 20, 7, 21, 3} {
		s += d.Step(id)
	}
	if s += d.Flush(); s != "<search> who </search>" {
		t.Errorf("streamed %q", s)
	}
	// Special chat markers are plain text with EncodeNoSpecial; the
	// protocol tags are not special and stay tokens.
	if got := tok.EncodeNoSpecial("<|im_end|><search>"); !slices.Equal(got, []int32{0, 0, 0, 20}) {
		t.Errorf("EncodeNoSpecial = %v", got)
	}
	if got := tok.EOSIDs(); !slices.Equal(got, []int32{3, 1}) {
		t.Errorf("EOSIDs = %v", got)
	}
	if got := tok.VocabSize(); got != 26 {
		t.Errorf("VocabSize = %d", got)
	}
	if id, ok := tok.TokenID("hamlet"); !ok || id != 9 {
		t.Errorf("TokenID(hamlet) = %d, %v", id, ok)
	}
}

// flagTokenizer is a WordLevel tokenizer that keeps white space as tokens
// (Split on " ", Isolated) and lower-cases, to show the added-token flags.
func flagTokenizer(t *testing.T, flags string) *Tokenizer {
	t.Helper()
	body := fmt.Sprintf(`{
	"added_tokens": [
		{"id": 10, "content": "<m>", "special": true, "normalized": false, %s},
		{"id": 11, "content": "<mm>", "special": false, "normalized": false},
		{"id": 12, "content": "HELLO", "special": false, "normalized": true}
	],
	"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
	"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated", "invert": false},
	"model": {"type": "WordLevel", "vocab": {"[UNK]": 0, " ": 1, "a": 2, "b": 3, "x": 4}, "unk_token": "[UNK]"}
	}`, flags)
	tok, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAddedTokenFlags(t *testing.T) {
	cases := []struct {
		flags, text string
		want        []int32
	}{
		{`"lstrip": false`, "a  <m> b", []int32{2, 1, 1, 10, 1, 3}},
		{`"lstrip": true`, "a  <m> b", []int32{2, 10, 1, 3}},
		{`"rstrip": true`, "a  <m>  b", []int32{2, 1, 1, 10, 3}},
		{`"lstrip": true, "rstrip": true`, "a <m> b", []int32{2, 10, 3}},
		{`"single_word": true`, "x<m>", []int32{0}}, // "x<m>" is one unknown word
		{`"single_word": true`, "x <m>", []int32{4, 1, 10}},
		{`"single_word": true`, "<m>.", []int32{10, 0}}, // punctuation is not a word character
		{`"single_word": false`, "x<m>", []int32{4, 10}},
		// Longest match: <mm> wins over <m> at the same position.
		{`"lstrip": false`, "<mm><m>", []int32{11, 10}},
		// A normalized token matches the normalised text: HELLO → hello.
		{`"lstrip": false`, "a HeLLo", []int32{2, 1, 12}},
		// Non-normalized tokens match the raw text only.
		{`"lstrip": false`, "<M>", []int32{0}},
	}
	for _, c := range cases {
		tok := flagTokenizer(t, c.flags)
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("{%s} Encode(%q) = %v, want %v", c.flags, c.text, got, c.want)
		}
	}
	tok := flagTokenizer(t, `"lstrip": false`)
	if got := tok.EncodeNoSpecial("<m>"); !slices.Equal(got, []int32{0}) {
		t.Errorf("EncodeNoSpecial(<m>) = %v", got)
	}
}
