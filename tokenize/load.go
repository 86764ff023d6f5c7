package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unsafe"
)

// Load reads a Hugging Face tokenizer.json. It supports the components listed
// in the package documentation and returns an error naming the JSON field
// (for example "model.merges[12]") for anything malformed or unsupported.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Parse builds a tokenizer from the contents of a tokenizer.json. The
// tokenizer keeps references into data, which must not be modified
// afterwards.
func Parse(data []byte) (*Tokenizer, error) {
	// The vocabulary's token strings are substrings of the document.
	doc := unsafe.String(unsafe.SliceData(data), len(data))
	f, err := readFile(doc)
	if err != nil {
		return nil, err
	}
	return build(f)
}

// fileJSON is the part of tokenizer.json that igsearch reads. Sections other
// than the model are small and kept raw until build decodes them.
type fileJSON struct {
	addedTokens   string
	normalizer    string
	preTokenizer  string
	decoder       string
	model         modelJSON
	haveModel     bool
	postProcessor string
}

type modelJSON struct {
	typ          string
	vocab        []vocabEntry
	vocabIsArray bool
	merges       [][2]string
	mergesSeen   bool
	opts         modelOptions
}

type vocabEntry struct {
	token string
	id    int64
}

// modelOptions are the scalar fields of "model".
type modelOptions struct {
	UnkToken                *string  `json:"unk_token"`
	ContinuingSubwordPrefix *string  `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string  `json:"end_of_word_suffix"`
	FuseUnk                 bool     `json:"fuse_unk"`
	ByteFallback            bool     `json:"byte_fallback"`
	IgnoreMerges            bool     `json:"ignore_merges"`
	Dropout                 *float64 `json:"dropout"`
}

func readFile(doc string) (*fileJSON, error) {
	r := &jsonReader{s: doc}
	f := &fileJSON{}
	err := r.object(func(key string) error {
		var err error
		switch key {
		case "model":
			f.haveModel = true
			err = readModel(r, &f.model)
		case "added_tokens":
			f.addedTokens, err = r.skip()
		case "normalizer":
			f.normalizer, err = r.skip()
		case "pre_tokenizer":
			f.preTokenizer, err = r.skip()
		case "decoder":
			f.decoder, err = r.skip()
		case "post_processor":
			f.postProcessor, err = r.skip()
		default:
			_, err = r.skip()
		}
		return fieldErr(key, err)
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return nil, err
	}
	if !f.haveModel {
		return nil, fmt.Errorf("model: missing")
	}
	return f, nil
}

func readModel(r *jsonReader, m *modelJSON) error {
	if r.peek() != '{' {
		return fmt.Errorf("model: expected an object")
	}
	return r.object(func(key string) error {
		switch key {
		case "type":
			if r.peek() == 'n' {
				_, err := r.skip()
				return err
			}
			s, err := r.str()
			if err != nil {
				return fmt.Errorf("model.type: %w", err)
			}
			m.typ = s
			return nil
		case "vocab":
			return fieldErr("model.vocab", readVocab(r, m))
		case "merges":
			m.mergesSeen = true
			return fieldErr("model.merges", readMerges(r, m))
		}
		raw, err := r.skip()
		if err != nil {
			return fmt.Errorf("model.%s: %w", key, err)
		}
		// One key at a time into the options struct; unknown keys are ignored.
		kq, _ := json.Marshal(key)
		if err := json.Unmarshal([]byte("{"+string(kq)+":"+raw+"}"), &m.opts); err != nil {
			return fmt.Errorf("model.%s: %w", key, err)
		}
		return nil
	})
}

// sizeGuess is a capacity for the vocabulary and merge lists from the size
// of the document: a byte-level BPE file spends about 40 bytes per token on
// its vocabulary entry and merge together.
func sizeGuess(doc string) int { return len(doc)/40 + 16 }

func readVocab(r *jsonReader, m *modelJSON) error {
	switch r.peek() {
	case '{':
	case '[':
		// Unigram stores [token, score] pairs; only noted so that build can
		// report the model type as unsupported.
		m.vocabIsArray = true
		_, err := r.skip()
		return err
	default:
		return fmt.Errorf("model.vocab: expected an object of token → id")
	}
	r.pos++
	m.vocab = make([]vocabEntry, 0, sizeGuess(r.s))
	if r.peek() == '}' {
		r.pos++
		return nil
	}
	for {
		tok, err := r.str()
		if err != nil {
			return err
		}
		if err := r.expect(':'); err != nil {
			return fmt.Errorf("model.vocab[%q]: %w", tok, err)
		}
		id, err := r.int()
		if err != nil {
			return fmt.Errorf("model.vocab[%q]: %w", tok, err)
		}
		m.vocab = append(m.vocab, vocabEntry{tok, id})
		switch r.peek() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return nil
		default:
			return r.syntaxErr("expected ',' or '}'")
		}
	}
}

func readMerges(r *jsonReader, m *modelJSON) error {
	if err := r.expect('['); err != nil {
		return err
	}
	m.merges = make([][2]string, 0, sizeGuess(r.s))
	if r.peek() == ']' {
		r.pos++
		return nil
	}
	for i := 0; ; i++ {
		switch r.peek() {
		case '"':
			s, err := r.str()
			if err != nil {
				return fmt.Errorf("model.merges[%d]: %w", i, err)
			}
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return fmt.Errorf("model.merges[%d]: %q is not two tokens separated by one space", i, s)
			}
			m.merges = append(m.merges, [2]string{a, b})
		case '[':
			r.pos++
			a, err := r.str()
			if err == nil {
				err = r.expect(',')
			}
			var b string
			if err == nil {
				b, err = r.str()
			}
			if err == nil && r.peek() != ']' {
				err = errors.New("want a pair of two tokens")
			}
			if err != nil {
				return fmt.Errorf("model.merges[%d]: %w", i, err)
			}
			r.pos++
			m.merges = append(m.merges, [2]string{a, b})
		default:
			return fmt.Errorf("model.merges[%d]: expected a string or a pair of strings", i)
		}
		switch r.peek() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return nil
		default:
			return r.syntaxErr("expected ',' or ']'")
		}
	}
}

// fieldErr prefixes err with field unless it already names it.
func fieldErr(field string, err error) error {
	if err == nil || strings.HasPrefix(err.Error(), field) {
		return err
	}
	return fmt.Errorf("%s: %w", field, err)
}

// addedTokenJSON is one entry of "added_tokens".
type addedTokenJSON struct {
	ID         *int64  `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

// build turns the parsed file into a tokenizer.
func build(f *fileJSON) (*Tokenizer, error) {
	t := &Tokenizer{}
	if err := t.buildModel(&f.model); err != nil {
		return nil, err
	}
	if err := t.buildAdded(f.addedTokens); err != nil {
		return nil, err
	}
	var err error
	if t.normalizer, err = parseNormalizer(f.normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if err := t.buildPreTokenizer(f.preTokenizer); err != nil {
		return nil, err
	}
	if err := t.buildDecoder(f.decoder); err != nil {
		return nil, err
	}
	// Added tokens that take part in normalisation are matched against their
	// normalised form.
	for _, a := range t.added.tokens {
		if a.normalized && t.normalizer != nil {
			a.match = t.normalizer.normalize(a.content)
		} else {
			a.match = a.content
		}
	}
	t.added.index()
	if err := t.finishModel(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tokenizer) buildModel(m *modelJSON) error {
	switch m.typ {
	case "BPE", "WordLevel":
	case "":
		// HF infers the model from its fields when "type" is absent.
		switch {
		case m.mergesSeen:
			m.typ = "BPE"
		case m.vocab != nil:
			m.typ = "WordLevel"
		default:
			return fmt.Errorf("model.type: missing")
		}
	default:
		return fmt.Errorf("model.type: %q is not supported (BPE, WordLevel)", m.typ)
	}
	if m.vocab == nil {
		if m.vocabIsArray {
			return fmt.Errorf("model.vocab: a list (Unigram layout) is not valid for %s", m.typ)
		}
		return fmt.Errorf("model.vocab: missing")
	}
	vocab := make(map[string]int32, len(m.vocab))
	maxID := int64(-1)
	for _, e := range m.vocab {
		if e.id < 0 || e.id >= 1<<31-1 {
			return fmt.Errorf("model.vocab[%q]: id %d out of range", e.token, e.id)
		}
		vocab[e.token] = int32(e.id)
		maxID = max(maxID, e.id)
	}
	t.vocab = vocab
	t.tokens = make([]string, maxID+1)
	for _, e := range m.vocab {
		t.tokens[e.id] = e.token
	}
	o := m.opts
	unk := int32(-1)
	if o.UnkToken != nil {
		id, ok := vocab[*o.UnkToken]
		if ok {
			unk = id
		} else if m.typ == "WordLevel" {
			return fmt.Errorf("model.unk_token: %q is not in model.vocab", *o.UnkToken)
		}
	}
	switch m.typ {
	case "WordLevel":
		if unk < 0 {
			return fmt.Errorf("model.unk_token: missing (WordLevel needs it for words outside the vocabulary)")
		}
		t.wordLevel = &wordLevel{vocab: vocab, unk: unk}
	case "BPE":
		if !m.mergesSeen {
			return fmt.Errorf("model.merges: missing")
		}
		if o.ContinuingSubwordPrefix != nil && *o.ContinuingSubwordPrefix != "" {
			return fmt.Errorf("model.continuing_subword_prefix: %q is not supported (only \"\")", *o.ContinuingSubwordPrefix)
		}
		if o.EndOfWordSuffix != nil && *o.EndOfWordSuffix != "" {
			return fmt.Errorf("model.end_of_word_suffix: %q is not supported (only \"\")", *o.EndOfWordSuffix)
		}
		if o.ByteFallback {
			return fmt.Errorf("model.byte_fallback: true is not supported")
		}
		if o.Dropout != nil && *o.Dropout != 0 {
			return fmt.Errorf("model.dropout: %v is not supported (only null or 0)", *o.Dropout)
		}
		b, err := newBPE(vocab, m.merges, unk, o.FuseUnk, o.IgnoreMerges)
		if err != nil {
			return err
		}
		t.bpe = b
	}
	return nil
}

func (t *Tokenizer) buildAdded(raw string) error {
	if raw == "" || raw == "null" {
		return nil
	}
	var list []addedTokenJSON
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return fmt.Errorf("added_tokens: %w", err)
	}
	for i, a := range list {
		if a.ID == nil {
			return fmt.Errorf("added_tokens[%d].id: missing", i)
		}
		if *a.ID < 0 || *a.ID >= 1<<31-1 {
			return fmt.Errorf("added_tokens[%d].id: %d out of range", i, *a.ID)
		}
		if a.Content == nil || *a.Content == "" {
			return fmt.Errorf("added_tokens[%d].content: missing or empty", i)
		}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		t.added.add(&addedToken{
			id:         int32(*a.ID),
			content:    *a.Content,
			special:    a.Special,
			lstrip:     a.LStrip,
			rstrip:     a.RStrip,
			normalized: normalized,
			singleWord: a.SingleWord,
		})
	}
	// Ids decide the tables; keep them in id order for stable iteration.
	sort.SliceStable(t.added.tokens, func(i, j int) bool { return t.added.tokens[i].id < t.added.tokens[j].id })
	return nil
}

// finishModel sizes the id tables to cover the model and the added tokens.
func (t *Tokenizer) finishModel() error {
	n := len(t.tokens)
	for _, a := range t.added.tokens {
		n = max(n, int(a.id)+1)
	}
	if n > len(t.tokens) {
		t.tokens = append(t.tokens, make([]string, n-len(t.tokens))...)
	}
	t.addedByID = make(map[int32]*addedToken, len(t.added.tokens))
	for _, a := range t.added.tokens {
		t.addedByID[a.id] = a
	}
	t.special = make([]bool, n)
	for _, a := range t.added.tokens {
		t.special[a.id] = a.special
	}
	if t.bpe != nil {
		t.bpe.setByteLevel(t.byteLevel, t.vocab)
	}
	return nil
}

// componentJSON is a normalizer, pre-tokenizer or decoder object. Only the
// fields of supported types are read.
type componentJSON struct {
	Type           string            `json:"type"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Decoders       []json.RawMessage `json:"decoders"`
	Pattern        *patternJSON      `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	AddPrefixSpace bool              `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	TrimOffsets    bool              `json:"trim_offsets"`
}

type patternJSON struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

func parseComponent(raw, field string) (*componentJSON, error) {
	if raw == "" || raw == "null" {
		return nil, nil
	}
	var c componentJSON
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if c.Type == "" {
		return nil, fmt.Errorf("%s.type: missing", field)
	}
	return &c, nil
}
