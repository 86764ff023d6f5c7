// Package tokenize loads a Hugging Face tokenizer.json and encodes and
// decodes text exactly as the Hugging Face tokenizers library does, for the
// components that Qwen2-style byte-level BPE and simple word-level
// vocabularies use:
//
//   - normalizer: NFC, NFD, NFKC, NFKD, Lowercase, Sequence, or none;
//   - pre-tokenizer: Split (Regex or String pattern, every behaviour,
//     invert), ByteLevel (add_prefix_space, use_regex; it must come last),
//     Whitespace, WhitespaceSplit, Sequence of these. The Qwen2, Llama 3 and
//     GPT-2 split patterns run on hand-written scanners; any other regex
//     runs on regexp2, much slower;
//   - model: BPE (merge ranks, ignore_merges, fuse_unk, unk_token;
//     byte_fallback, dropout and subword prefixes/suffixes are rejected) and
//     WordLevel (unk_token required);
//   - added tokens: matched before everything else, leftmost-longest, with
//     special, lstrip, rstrip, normalized and single_word;
//   - decoder: ByteLevel, or none (tokens joined by spaces).
//
// The post-processor is ignored: Encode behaves like add_special_tokens =
// false. A Tokenizer is immutable after Load and safe for concurrent use.
//
// The package also writes the Qwen2.5 chat format (see ChatTemplate).
package tokenize

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Tokenizer encodes text to token ids and back. Load or Parse make one; it
// is safe for concurrent use.
type Tokenizer struct {
	normalizer normalizer // nil: none
	splitters  []splitter // pre-tokenizer steps, in order
	byteLevel  bool       // the pre-tokenizer ends with ByteLevel
	bpe        *bpe
	wordLevel  *wordLevel
	added      addedVocab
	decoder    decoderKind

	vocab     map[string]int32 // the model's vocabulary
	tokens    []string         // id → model token ("" where the id is unused)
	addedByID map[int32]*addedToken
	special   []bool // id → special added token
}

// wordLevel is the WordLevel model: a word is one token, or unk.
type wordLevel struct {
	vocab map[string]int32
	unk   int32
}

// Encode returns the ids of text. Special tokens written in the text (such
// as "<|im_start|>") are recognised as such. No special tokens are added.
func (t *Tokenizer) Encode(text string) []int32 {
	return t.AppendEncode(nil, text, false)
}

// EncodeNoSpecial is Encode with the text of special tokens treated as plain
// text: "<|im_end|>" becomes several ordinary tokens. Use it for untrusted
// text (retrieved documents, user input) that must not inject control
// tokens. Added tokens that are not special are still recognised.
func (t *Tokenizer) EncodeNoSpecial(text string) []int32 {
	return t.AppendEncode(nil, text, true)
}

// AppendEncode appends the ids of text to dst and returns the extended
// slice. noSpecial is as in EncodeNoSpecial.
func (t *Tokenizer) AppendEncode(dst []int32, text string, noSpecial bool) []int32 {
	if text == "" {
		return dst
	}
	st := &encodeState{t: t, dst: dst, noSpecial: noSpecial}
	word := st.word
	if t.wordLevel != nil {
		word = st.wordLevelWord
	}
	emit := word
	for i := len(t.splitters) - 1; i >= 0; i-- {
		sp, next := t.splitters[i], emit
		emit = func(p string) { sp.split(p, next) }
	}
	st.pre = emit
	t.added.raw.split(text, noSpecial, st.rawPiece)
	return st.dst
}

// encodeState carries one Encode call through the pipeline.
type encodeState struct {
	t         *Tokenizer
	dst       []int32
	noSpecial bool
	pre       func(string) // pre-tokenizer steps, then the model
}

// rawPiece takes a piece of the input after non-normalised added tokens
// were split off.
func (st *encodeState) rawPiece(s string, id int32) {
	if id >= 0 {
		st.dst = append(st.dst, id)
		return
	}
	if st.t.normalizer != nil {
		s = st.t.normalizer.normalize(s)
	}
	if st.t.added.norm.empty {
		st.pre(s)
		return
	}
	st.t.added.norm.split(s, st.noSpecial, st.normPiece)
}

// normPiece takes a normalised piece after normalised added tokens were
// split off.
func (st *encodeState) normPiece(s string, id int32) {
	if id >= 0 {
		st.dst = append(st.dst, id)
		return
	}
	st.pre(s)
}

func (st *encodeState) word(w string) { st.dst = st.t.bpe.encodeWord(st.dst, w) }

func (st *encodeState) wordLevelWord(w string) {
	m := st.t.wordLevel
	key := w
	if st.t.byteLevel {
		key = byteLevelString(w)
	}
	if id, ok := m.vocab[key]; ok {
		st.dst = append(st.dst, id)
	} else {
		st.dst = append(st.dst, m.unk)
	}
}

// EncodeBatch encodes texts in parallel on GOMAXPROCS goroutines; the
// result is in the order of texts. noSpecial is as in EncodeNoSpecial.
func (t *Tokenizer) EncodeBatch(texts []string, noSpecial bool) [][]int32 {
	out := make([][]int32, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				out[i] = t.AppendEncode(nil, texts[i], noSpecial)
			}
		})
	}
	wg.Wait()
	return out
}

// TokenID returns the id of a token given as it is spelled in the
// vocabulary: an added token's content ("<|im_end|>") or a model token in its
// byte-level spelling ("Ġthe" for " the").
func (t *Tokenizer) TokenID(token string) (int32, bool) {
	if a := t.added.byText[token]; a != nil {
		return a.id, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// IDToken returns the vocabulary spelling of id, the inverse of TokenID.
func (t *Tokenizer) IDToken(id int32) (string, bool) {
	return t.tokenText(id, false)
}

// VocabSize is one more than the largest id, model and added tokens
// together: the number of rows an embedding table needs at least. (Qwen2.5
// models pad their embedding to 151936; the tokenizer has 151665.)
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// SpecialIDs returns the ids of the special added tokens in increasing order.
func (t *Tokenizer) SpecialIDs() []int32 {
	var ids []int32
	for _, a := range t.added.tokens {
		if a.special {
			ids = append(ids, a.id)
		}
	}
	return ids
}

// EOSIDs returns the ids that end a generated turn in the Qwen2.5 chat
// format, those of IMEnd and EndOfText that the vocabulary has, in that
// order (the eos_token_id list of Qwen2.5-Instruct's generation_config).
func (t *Tokenizer) EOSIDs() []int32 {
	var ids []int32
	for _, s := range []string{IMEnd, EndOfText} {
		if id, ok := t.TokenID(s); ok {
			ids = append(ids, id)
		}
	}
	return ids
}
