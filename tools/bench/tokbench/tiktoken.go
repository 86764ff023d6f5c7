package main

import (
	"fmt"

	"github.com/pkoukk/tiktoken-go"

	"github.com/igsearch/igsearch/tokenize"
)

// qwenLoader is a tiktoken BpeLoader that serves the Qwen2.5 vocabulary of a
// tokenizer.json as tiktoken mergeable ranks: each model token's raw bytes
// with its id as rank. (Qwen2's BPE was converted from a tiktoken file, so
// ids are ranks.)
type qwenLoader struct{ tok *tokenize.Tokenizer }

// LoadTiktokenBpe implements tiktoken.BpeLoader; the file name is ignored.
// Special tokens are left out: tiktoken takes them separately.
func (l qwenLoader) LoadTiktokenBpe(string) (map[string]int, error) {
	ranks := make(map[string]int, l.tok.VocabSize())
	for id := range int32(l.tok.VocabSize()) {
		if l.tok.IsSpecial(id) {
			continue
		}
		if b := l.tok.TokenBytes(id); len(b) > 0 {
			ranks[string(b)] = int(id)
		}
	}
	return ranks, nil
}

// newTiktoken builds a tiktoken encoder over the Qwen2.5 vocabulary with the
// Qwen2 pre-tokenizer pattern, its ranks coming through the BPE loader.
func newTiktoken(tok *tokenize.Tokenizer, path string) (*tiktoken.Tiktoken, error) {
	loader := qwenLoader{tok}
	tiktoken.SetBpeLoader(loader)
	ranks, err := loader.LoadTiktokenBpe(path)
	if err != nil {
		return nil, err
	}
	special := map[string]int{}
	specialSet := map[string]any{}
	for _, id := range tok.SpecialIDs() {
		s, _ := tok.IDToken(id)
		special[s] = int(id)
		specialSet[s] = true
	}
	core, err := tiktoken.NewCoreBPE(ranks, special, tokenize.PatternQwen2)
	if err != nil {
		return nil, fmt.Errorf("tiktoken-go: %w", err)
	}
	enc := &tiktoken.Encoding{Name: "qwen2.5", PatStr: tokenize.PatternQwen2, MergeableRanks: ranks, SpecialTokens: special}
	return tiktoken.NewTiktoken(core, enc, specialSet), nil
}
