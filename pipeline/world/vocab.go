package world

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// SpecialTokens are the special added tokens, ids 0.. in this order.
var SpecialTokens = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<unk>"}

// ProtocolTokens are the protocol tags: non-special added tokens, so each is
// a single id, with ids following SpecialTokens in this order.
var ProtocolTokens = []string{"<think>", "</think>", "<search>", "</search>", "<information>", "</information>", "<answer>", "</answer>", "<documents>", "</documents>", "<refine>", "</refine>"}

// UnkToken is the WordLevel model's unknown token.
const UnkToken = "<unk>"

// SearchR1Prompt is the Search-R1 base prompt; %s is the question.
const SearchR1Prompt = "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new information. After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. You can search as many times as your want. If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: %s\n"

// protocolTexts are fixed texts the pipeline puts around the world's own
// text; the vocabulary covers their words so that no prompt, observation or
// correction produces <unk>.
var protocolTexts = []string{
	strings.Replace(SearchR1Prompt, "%s", "", 1),
	// The AutoRefine prompt.
	"You are a helpful assistant excel at answering questions with multi-turn search engine calling. To answer questions, you must first reason through the available information using <think> and </think>. If you identify missing knowledge, you may issue a search request using <search> query </search> at any time. The retrieval system will provide you with the three most relevant documents enclosed in <documents> and </documents>. After each search, you need to summarize and refine the existing documents in <refine> and </refine>. You may send multiple search requests if needed. Once you have sufficient information, provide a concise final answer using <answer> and </answer>. For example, <answer> Donald Trump </answer>. Question: \n",
	// Search-R1's correction for an invalid action.
	"\nMy previous action is invalid. If I want to search, I should put the query between <search> and </search>. If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n",
	// The Qwen2.5 chat format and its default system message.
	"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n<|endoftext|><pad>",
	// The observation format and the IG scoring suffix.
	"\n\n<information>Doc 1(Title: T) text\n</information>\n\n", "\n<documents>Doc 1(Title: T) text\n</documents>\n", "\n<answer> ",
}

// wordLevelRE is Hugging Face's Whitespace pre-tokenizer pattern. Go's \w
// is ASCII-only where HF's is Unicode; the world's text is ASCII.
var wordLevelRE = regexp.MustCompile(`\w+|[^\w\s]+`)

// addedRE matches the added tokens, which are split off before
// pre-tokenizing, as Hugging Face tokenizers do.
var addedRE = func() *regexp.Regexp {
	var alts []string
	for _, t := range append(append([]string(nil), SpecialTokens...), ProtocolTokens...) {
		alts = append(alts, regexp.QuoteMeta(t))
	}
	return regexp.MustCompile(strings.Join(alts, "|"))
}()

// PreTokenize splits text as the world's tokenizer.json does: added tokens
// first, then the Whitespace pattern `\w+|[^\w\s]+` on the rest.
func PreTokenize(text string) []string {
	var out []string
	last := 0
	for _, m := range addedRE.FindAllStringIndex(text, -1) {
		out = append(out, wordLevelRE.FindAllString(text[last:m[0]], -1)...)
		out = append(out, text[m[0]:m[1]])
		last = m[1]
	}
	return append(out, wordLevelRE.FindAllString(text[last:], -1)...)
}

// reservedWords returns the lower-cased words of every template, pool and
// protocol text, which entity names must avoid.
func reservedWords() map[string]bool {
	var texts []string
	texts = append(texts, protocolTexts...)
	for _, pool := range [][]string{occupations, orgKinds, genres, adjectives, topics, landform, landforms, plants, features, seasons, events, buildings, goods, colours, animals} {
		texts = append(texts, pool...)
	}
	for _, r := range relations {
		texts = append(texts, r.query, r.need, r.fact, r.vague)
	}
	for _, t := range chainTemplates {
		texts = append(texts, t.text)
	}
	for _, t := range comparisonTemplates {
		texts = append(texts, t.text, t.need, t.conclude)
	}
	m := map[string]bool{}
	for _, t := range texts {
		for _, tok := range PreTokenize(t) {
			m[strings.ToLower(tok)] = true
		}
	}
	return m
}

// buildVocab collects every token of the world's text and of the protocol
// texts: added tokens first, then words sorted bytewise.
func buildVocab(w *World) []string {
	seen := map[string]bool{}
	add := func(text string) {
		for _, tok := range PreTokenize(text) {
			seen[tok] = true
		}
	}
	for _, t := range protocolTexts {
		add(t)
	}
	for i := 0; i <= 20; i++ {
		add(strconv.Itoa(i))
	}
	for _, p := range w.Passages {
		add(p.Contents())
	}
	for _, split := range [][]Question{w.Train, w.Dev, w.Test} {
		for _, q := range split {
			add(q.Question + " " + strings.Join(q.GoldenAnswers, " "))
			for _, s := range q.Metadata.Chain {
				add(s.Query + " " + s.Value + " " + s.Entity)
			}
		}
	}
	for _, x := range w.Expert {
		r, _ := x.Render(func(string) (string, error) { return "", nil })
		add(r)
	}
	var words []string
	added := map[string]bool{}
	for _, t := range append(append([]string(nil), SpecialTokens...), ProtocolTokens...) {
		added[t] = true
	}
	for tok := range seen {
		if !added[tok] {
			words = append(words, tok)
		}
	}
	sort.Strings(words)
	vocab := append(append(append([]string(nil), SpecialTokens...), ProtocolTokens...), words...)
	return vocab
}

// tokenizerJSON writes the Hugging Face tokenizer.json for vocab.
func tokenizerJSON(vocab []string) ([]byte, error) {
	type addedToken struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	type typed struct {
		Type string `json:"type"`
	}
	type model struct {
		Type     string       `json:"type"`
		Vocab    orderedVocab `json:"vocab"`
		UnkToken string       `json:"unk_token"`
	}
	type file struct {
		Version       string       `json:"version"`
		Truncation    any          `json:"truncation"`
		Padding       any          `json:"padding"`
		AddedTokens   []addedToken `json:"added_tokens"`
		Normalizer    any          `json:"normalizer"`
		PreTokenizer  typed        `json:"pre_tokenizer"`
		PostProcessor any          `json:"post_processor"`
		Decoder       any          `json:"decoder"`
		Model         model        `json:"model"`
	}
	f := file{Version: "1.0", PreTokenizer: typed{"Whitespace"}, Model: model{Type: "WordLevel", Vocab: vocab, UnkToken: UnkToken}}
	for i, t := range SpecialTokens {
		f.AddedTokens = append(f.AddedTokens, addedToken{ID: i, Content: t, Special: true})
	}
	for i, t := range ProtocolTokens {
		f.AddedTokens = append(f.AddedTokens, addedToken{ID: len(SpecialTokens) + i, Content: t})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// orderedVocab marshals as a JSON object token → id in id order.
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, t := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(t)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(i))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalNoEscape marshals v without escaping <, > and &.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
