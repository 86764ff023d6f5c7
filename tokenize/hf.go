//go:build hftokenizers

package tokenize

import (
	"fmt"
	"os"

	hf "github.com/daulet/tokenizers"
)

// Codec is what both backends provide: the project's own Tokenizer and, with
// the hftokenizers build tag, HFTokenizer over the Rust library.
type Codec interface {
	Encode(text string) []int32
	EncodeNoSpecial(text string) []int32
	Decode(ids []int32, skipSpecial bool) string
	VocabSize() int
}

var (
	_ Codec = (*Tokenizer)(nil)
	_ Codec = (*HFTokenizer)(nil)
)

// HFTokenizer is the Hugging Face tokenizers Rust library, through
// github.com/daulet/tokenizers (cgo, linking libtokenizers.a). It has the
// same encode and decode methods as Tokenizer. Close frees it.
type HFTokenizer struct {
	tk    *hf.Tokenizer // special tokens recognised
	plain *hf.Tokenizer // special tokens encoded as text
}

// LoadHF loads a tokenizer.json with the Rust library.
func LoadHF(path string) (*HFTokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	tk, err := hf.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: hf tokenizers: %w", path, err)
	}
	plain, err := hf.FromBytes(data, hf.WithEncodeSpecialTokens())
	if err != nil {
		tk.Close()
		return nil, fmt.Errorf("tokenizer %s: hf tokenizers: %w", path, err)
	}
	return &HFTokenizer{tk: tk, plain: plain}, nil
}

// Encode is Tokenizer.Encode (add_special_tokens = false).
func (h *HFTokenizer) Encode(text string) []int32 {
	ids, _ := h.tk.Encode(text, false)
	return toInt32(ids)
}

// EncodeNoSpecial is Tokenizer.EncodeNoSpecial.
func (h *HFTokenizer) EncodeNoSpecial(text string) []int32 {
	ids, _ := h.plain.Encode(text, false)
	return toInt32(ids)
}

// Decode is Tokenizer.Decode. Negative ids are dropped.
func (h *HFTokenizer) Decode(ids []int32, skipSpecial bool) string {
	u := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if id >= 0 {
			u = append(u, uint32(id))
		}
	}
	return h.tk.Decode(u, skipSpecial)
}

// VocabSize is the vocabulary size with added tokens, as the Rust library
// reports it.
func (h *HFTokenizer) VocabSize() int { return int(h.tk.VocabSize()) }

// Close frees the Rust tokenizers.
func (h *HFTokenizer) Close() error {
	err := h.tk.Close()
	if err2 := h.plain.Close(); err == nil {
		err = err2
	}
	return err
}

func toInt32(ids []uint32) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}
