package world

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// smallConfig is a world small enough for fast tests.
func smallConfig(seed uint64) Config {
	c := DefaultConfig()
	c.Seed = seed
	c.Countries, c.Cities, c.People, c.Organisations, c.Works = 8, 40, 150, 40, 80
	c.Train, c.Dev, c.Test = 300, 40, 60
	return c
}

func mustGenerate(t *testing.T, cfg Config) *World {
	t.Helper()
	w, err := Generate(cfg)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return w
}

func writeWorld(t *testing.T, w *World) string {
	t.Helper()
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return dir
}

func TestDeterministic(t *testing.T) {
	a := writeWorld(t, mustGenerate(t, smallConfig(3)))
	b := writeWorld(t, mustGenerate(t, smallConfig(3)))
	c := writeWorld(t, mustGenerate(t, smallConfig(4)))
	for _, f := range Files {
		fa, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.ReadFile(filepath.Join(b, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s differs between two runs with the same seed", f)
		}
		fc, err := os.ReadFile(filepath.Join(c, f))
		if err != nil {
			t.Fatal(err)
		}
		if f != "world.json" && bytes.Equal(fa, fc) {
			t.Errorf("%s is the same for seeds 3 and 4", f)
		}
	}
}

func allQuestions(w *World) []Question {
	return slices.Concat(w.Train, w.Dev, w.Test)
}

func tokenSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, t := range PreTokenize(s) {
		m[t] = true
	}
	return m
}

func TestGoldChains(t *testing.T) {
	w := mustGenerate(t, smallConfig(5))
	for _, q := range allQuestions(w) {
		chain := q.Metadata.Chain
		if len(q.GoldenAnswers) != 1 || len(chain) == 0 || len(q.Metadata.GoldDocs) != len(chain) {
			t.Fatalf("%s: malformed question %+v", q.ID, q)
		}
		ans := q.GoldenAnswers[0]
		wantHops := map[string]int{SingleHop: 1, TwoHop: 2, ThreeHop: 3, Comparison: 2}[q.DataSource]
		if len(chain) != wantHops {
			t.Errorf("%s: %s question with %d steps", q.ID, q.DataSource, len(chain))
		}
		for i, s := range chain {
			ent := w.Entities[s.EntityID]
			if ent.Name != s.Entity || ent.Type != s.Type || fmt.Sprint(ent.Doc) != s.DocID || q.Metadata.GoldDocs[i] != s.DocID {
				t.Errorf("%s step %d: %+v does not match entity %+v", q.ID, i, s, ent)
			}
			v, _, ok := w.Lookup(s.EntityID, s.Relation)
			if !ok || v != s.Value {
				t.Errorf("%s step %d: %s(%s) = %q, chain says %q", q.ID, i, s.Relation, s.Entity, v, s.Value)
			}
			p := w.Passages[ent.Doc]
			toks := tokenSet(p.Contents())
			if p.Entity != s.EntityID || p.Title != s.Entity || !toks[s.Value] || !toks[s.Entity] {
				t.Errorf("%s step %d: passage %d does not state %s(%s) = %s: %q", q.ID, i, p.ID, s.Relation, s.Entity, s.Value, p.Contents())
			}
			if !strings.Contains(s.Query, s.Entity) {
				t.Errorf("%s step %d: precise query %q lacks the entity", q.ID, i, s.Query)
			}
		}
		if q.DataSource == Comparison {
			a, b := chain[0], chain[1]
			if a.Relation != b.Relation || a.EntityID == b.EntityID {
				t.Errorf("%s: comparison steps %+v %+v", q.ID, a, b)
			}
			first := a
			if b.Value < a.Value {
				first = b
			}
			if ans != first.Entity || a.Value == b.Value {
				t.Errorf("%s: answer %q, years %s=%s %s=%s", q.ID, ans, a.Entity, a.Value, b.Entity, b.Value)
			}
			if !tokenSet(w.Passages[w.Entities[first.EntityID].Doc].Contents())[ans] {
				t.Errorf("%s: answer not in its passage", q.ID)
			}
			continue
		}
		for i := 1; i < len(chain); i++ {
			if chain[i].Entity != chain[i-1].Value {
				t.Errorf("%s: step %d entity %q is not step %d value %q", q.ID, i, chain[i].Entity, i-1, chain[i-1].Value)
			}
		}
		last := chain[len(chain)-1]
		if last.Value != ans {
			t.Errorf("%s: last step value %q, answer %q", q.ID, last.Value, ans)
		}
		if !tokenSet(w.Passages[w.Entities[last.EntityID].Doc].Contents())[ans] {
			t.Errorf("%s: answer %q not in the last gold passage", q.ID, ans)
		}
		if tokenSet(q.Question)[ans] {
			t.Errorf("%s: the question %q gives its answer away", q.ID, q.Question)
		}
		if !strings.Contains(q.Question, chain[0].Entity) {
			t.Errorf("%s: question %q does not name %s", q.ID, q.Question, chain[0].Entity)
		}
	}
}

// readJSONL decodes every line of path into a fresh T.
func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var v T
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
}

type hfTokenizer struct {
	Version     string `json:"version"`
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer struct {
		Type string `json:"type"`
	} `json:"pre_tokenizer"`
	Decoder json.RawMessage `json:"decoder"`
	Model   struct {
		Type     string         `json:"type"`
		Vocab    map[string]int `json:"vocab"`
		UnkToken string         `json:"unk_token"`
	} `json:"model"`
}

func readTokenizer(t *testing.T, dir string) hfTokenizer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tok hfTokenizer
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatalf("tokenizer.json: %v", err)
	}
	return tok
}

func TestTokenizerJSON(t *testing.T) {
	w := mustGenerate(t, DefaultConfig())
	dir := writeWorld(t, w)
	tok := readTokenizer(t, dir)
	if tok.Version != "1.0" || tok.Model.Type != "WordLevel" || tok.PreTokenizer.Type != "Whitespace" || tok.Model.UnkToken != "<unk>" {
		t.Fatalf("tokenizer.json header: %+v", tok)
	}
	if string(tok.Normalizer) != "null" || string(tok.Decoder) != "null" {
		t.Errorf("normalizer %s, decoder %s; want null", tok.Normalizer, tok.Decoder)
	}
	n := len(tok.Model.Vocab)
	if n != len(w.Vocab) || n > 4000 {
		t.Errorf("vocab size %d (world %d), want ≤ 4000", n, len(w.Vocab))
	}
	ids := make([]string, n)
	for word, id := range tok.Model.Vocab {
		if id < 0 || id >= n || ids[id] != "" {
			t.Fatalf("vocab id %d of %q is out of range or taken", id, word)
		}
		ids[id] = word
	}
	wantAdded := append(append([]string(nil), SpecialTokens...), ProtocolTokens...)
	if len(tok.AddedTokens) != len(wantAdded) {
		t.Fatalf("%d added tokens, want %d", len(tok.AddedTokens), len(wantAdded))
	}
	for i, a := range tok.AddedTokens {
		if a.ID != i || a.Content != wantAdded[i] || ids[i] != a.Content || a.Special != (i < len(SpecialTokens)) {
			t.Errorf("added token %d: %+v, vocab has %q", i, a, ids[i])
		}
	}
	words := ids[len(wantAdded):]
	if !sort.StringsAreSorted(words) {
		t.Errorf("vocab words after the added tokens are not sorted")
	}
	if _, ok := tok.Model.Vocab["<unk>"]; !ok {
		t.Errorf("<unk> not in vocab")
	}
}

// hfPreTokenize splits text as Hugging Face does with this tokenizer.json:
// added tokens first (longest match), then `\w+|[^\w\s]+`. It is written
// independently of PreTokenize, from the file's own added tokens.
func hfPreTokenize(text string, added []string) []string {
	sorted := append([]string(nil), added...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	re := regexp.MustCompile(`\w+|[^\w\s]+`)
	var out []string
	start := 0
	for i := 0; i < len(text); i++ {
		for _, a := range sorted {
			if strings.HasPrefix(text[i:], a) {
				out = append(out, re.FindAllString(text[start:i], -1)...)
				out = append(out, a)
				i += len(a) - 1
				start = i + 1
				break
			}
		}
	}
	return append(out, re.FindAllString(text[start:], -1)...)
}

func TestVocabCoversEverything(t *testing.T) {
	w := mustGenerate(t, smallConfig(6))
	dir := writeWorld(t, w)
	tok := readTokenizer(t, dir)
	var added []string
	for _, a := range tok.AddedTokens {
		added = append(added, a.Content)
	}
	missing := map[string]int{}
	check := func(what, text string) {
		for _, r := range text {
			if r > 127 {
				t.Fatalf("%s: non-ASCII text %q", what, text)
			}
		}
		for _, tk := range hfPreTokenize(text, added) {
			if _, ok := tok.Model.Vocab[tk]; !ok {
				if missing[tk] == 0 {
					t.Errorf("%s: token %q not in vocab (text %q)", what, tk, text)
				}
				missing[tk]++
			}
		}
	}
	type corpusRow struct{ ID, Contents string }
	corpus := readJSONL[corpusRow](t, filepath.Join(dir, "corpus.jsonl"))
	title := map[string]string{}
	text := map[string]string{}
	for _, r := range corpus {
		check("corpus", r.Contents)
		tl, tx, ok := strings.Cut(r.Contents, "\n")
		if !ok {
			t.Fatalf("corpus %s: no title line", r.ID)
		}
		title[r.ID], text[r.ID] = strings.Trim(tl, `"`), tx
	}
	obs := func(docs []string) string {
		var b strings.Builder
		b.WriteString("\n\n<information>")
		for i, d := range docs {
			fmt.Fprintf(&b, "Doc %d(Title: %s) %s\n", i+1, title[d], text[d])
		}
		b.WriteString("</information>\n\n")
		return b.String()
	}
	chat := func(q string) string {
		return "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n" +
			fmt.Sprintf(SearchR1Prompt, q) + "<|im_end|>\n<|im_start|>assistant\n"
	}
	for _, split := range []string{"train", "dev", "test"} {
		for _, q := range readJSONL[Question](t, filepath.Join(dir, split+".jsonl")) {
			check(split, chat(q.Question))
			check(split, "\n<answer> "+strings.Join(q.GoldenAnswers, " ")+" </answer><|endoftext|>")
			for _, s := range q.Metadata.Chain {
				check(split, s.Query)
			}
		}
	}
	for _, x := range readJSONL[Expert](t, filepath.Join(dir, "expert.jsonl")) {
		docs := []string{}
		r, err := x.Render(func(string) (string, error) {
			docs = append(docs, fmt.Sprint(len(docs)%len(corpus)))
			return obs(docs), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check("expert", r)
	}
	check("correction", protocolTexts[2])
	check("autorefine", protocolTexts[1]+"<refine> Doc 1 </refine>")
}

// TestWriteIsAtomic: writing over a world leaves exactly its files, no
// temporaries (atomicfile's own tests cover a failing writer).
func TestWriteIsAtomic(t *testing.T) {
	w := mustGenerate(t, smallConfig(7))
	dir := writeWorld(t, w)
	if err := w.Write(dir); err != nil { // over existing files
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := append([]string(nil), Files...)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want exactly %v", names, want)
	}
}

func TestSplitsDisjoint(t *testing.T) {
	for _, by := range []string{SplitByEntity, SplitByQuestion} {
		t.Run(by, func(t *testing.T) {
			cfg := smallConfig(8)
			cfg.SplitBy = by
			checkSplits(t, mustGenerate(t, cfg))
		})
	}
}

// checkSplits checks the split sizes and hop mix, that no question or id is
// in two splits, and, by entity, that no entity is asked about in two; by
// question, that some are (else the mode would not differ).
func checkSplits(t *testing.T, w *World) {
	cfg := w.Config
	shared := 0
	seenText := map[string]string{}
	seenID := map[string]bool{}
	headSplit := map[int]string{}
	for _, sp := range []struct {
		name string
		qs   []Question
		n    int
	}{{"train", w.Train, cfg.Train}, {"dev", w.Dev, cfg.Dev}, {"test", w.Test, cfg.Test}} {
		if len(sp.qs) != sp.n {
			t.Errorf("%s: %d questions, want %d", sp.name, len(sp.qs), sp.n)
		}
		bySource := map[string]int{}
		for _, q := range sp.qs {
			bySource[q.DataSource]++
			if seenID[q.ID] {
				t.Errorf("duplicate id %s", q.ID)
			}
			seenID[q.ID] = true
			if s, ok := seenText[q.Question]; ok {
				t.Errorf("%q is in %s and %s", q.Question, s, sp.name)
			}
			seenText[q.Question] = sp.name
			heads := []int{q.Metadata.Chain[0].EntityID}
			if q.DataSource == Comparison {
				heads = append(heads, q.Metadata.Chain[1].EntityID)
			}
			for _, h := range heads {
				if s, ok := headSplit[h]; ok && s != sp.name {
					if cfg.SplitBy != SplitByQuestion {
						t.Errorf("entity %s is asked about in %s and %s", w.Entities[h].Name, s, sp.name)
					}
					shared++
				}
				headSplit[h] = sp.name
			}
		}
		for i, src := range Sources {
			want := apportion(sp.n, []float64{cfg.Hops.Single, cfg.Hops.Two, cfg.Hops.Three, cfg.Hops.Comparison})[i]
			if bySource[src] != want {
				t.Errorf("%s: %d %s questions, want %d", sp.name, bySource[src], src, want)
			}
		}
	}
	if cfg.SplitBy == SplitByQuestion && shared == 0 {
		t.Error("split by question, yet no entity is asked about in two splits")
	}
}

// twinCount counts the single-hop questions, over all splits, that ask the
// first step of a multi-hop question about the same entity.
func twinCount(w *World) int {
	type key struct {
		entity   int
		relation Relation
	}
	multi := map[key]bool{}
	for _, q := range allQuestions(w) {
		if q.DataSource == TwoHop || q.DataSource == ThreeHop {
			multi[key{q.Metadata.Chain[0].EntityID, q.Metadata.Chain[0].Relation}] = true
		}
	}
	n := 0
	for _, q := range allQuestions(w) {
		if q.DataSource == SingleHop && multi[key{q.Metadata.Chain[0].EntityID, q.Metadata.Chain[0].Relation}] {
			n++
		}
	}
	return n
}

func TestNoTwins(t *testing.T) {
	for _, by := range []string{SplitByEntity, SplitByQuestion} {
		t.Run(by, func(t *testing.T) {
			cfg := smallConfig(8)
			cfg.SplitBy = by
			if n := twinCount(mustGenerate(t, cfg)); n == 0 {
				t.Fatal("a world without NoTwins has no twins: the check below could not fail")
			}
			cfg.NoTwins = true
			w := mustGenerate(t, cfg)
			if n := twinCount(w); n != 0 {
				t.Errorf("NoTwins: %d single-hop questions have a multi-hop twin", n)
			}
			checkSplits(t, w)
		})
	}
	// Too few entities to draw the questions without twins: a clear error.
	cfg := smallConfig(8)
	cfg.NoTwins = true
	cfg.Countries, cfg.Cities, cfg.People, cfg.Organisations, cfg.Works = 4, 12, 40, 10, 20
	cfg.Train, cfg.Dev, cfg.Test = 150, 10, 10
	cfg.Hops = HopMix{Single: 1, Two: 1}
	if _, err := Generate(cfg); err == nil || !strings.Contains(err.Error(), "not twins") {
		t.Errorf("too few entities for NoTwins: %v, want an error about twins", err)
	}
}

func TestExpertQueries(t *testing.T) {
	cfg := DefaultConfig()
	w := mustGenerate(t, cfg)
	if len(w.Expert) != len(w.Train) {
		t.Fatalf("%d expert trajectories for %d train questions", len(w.Expert), len(w.Train))
	}
	kinds := map[QueryKind]int{}
	total := 0
	for i, x := range w.Expert {
		q := w.Train[i]
		chain := q.Metadata.Chain
		if x.ID != q.ID || x.Question != q.Question {
			t.Fatalf("expert %d is for %s, train question is %s", i, x.ID, q.ID)
		}
		last := x.Turns[len(x.Turns)-1]
		if last.Answer != q.GoldenAnswers[0] || last.Query != "" || last.Step != len(chain) {
			t.Errorf("%s: final turn %+v", x.ID, last)
		}
		searches := x.Turns[:len(x.Turns)-1]
		if len(searches) > cfg.MaxSearches {
			t.Errorf("%s: %d searches, max %d", x.ID, len(searches), cfg.MaxSearches)
		}
		precise := 0
		for j, tn := range searches {
			kinds[tn.Kind]++
			total++
			st := chain[tn.Step]
			if tn.Answer != "" || tn.Think == "" || tn.DocID != st.DocID {
				t.Errorf("%s turn %d: %+v", x.ID, j, tn)
			}
			switch tn.Kind {
			case Precise:
				if tn.Query != st.Query || tn.Step != precise {
					t.Errorf("%s turn %d: precise query %q for step %d, want %q for step %d", x.ID, j, tn.Query, tn.Step, st.Query, precise)
				}
				precise++
			case Vague:
				if tokenSet(tn.Query)[st.Entity] || j+1 >= len(searches) || searches[j+1].Kind != Precise {
					t.Errorf("%s turn %d: vague query %q names %s or is not followed by a precise one", x.ID, j, tn.Query, st.Entity)
				}
			case Redundant:
				if j == 0 || searches[j-1].Query != tn.Query || searches[j-1].Kind != Precise {
					t.Errorf("%s turn %d: redundant query %q does not repeat the previous precise query", x.ID, j, tn.Query)
				}
			default:
				t.Errorf("%s turn %d: kind %q", x.ID, j, tn.Kind)
			}
		}
		if precise != len(chain) {
			t.Errorf("%s: %d precise queries for %d steps", x.ID, precise, len(chain))
		}
	}
	for kind, want := range map[QueryKind]float64{Precise: 1 - cfg.VagueFrac - cfg.RedundantFrac, Vague: cfg.VagueFrac, Redundant: cfg.RedundantFrac} {
		got := float64(kinds[kind]) / float64(total)
		if math.Abs(got-want) > 0.02 {
			t.Errorf("%s queries: %.3f of %d, want %.2f ± 0.02", kind, got, total, want)
		}
	}
}

func TestPassageLength(t *testing.T) {
	w := mustGenerate(t, DefaultConfig())
	for _, p := range w.Passages {
		n := countWords(p.Text)
		if n < w.Config.MinWords || n > w.Config.MaxWords || n < 30 || n > 100 {
			t.Errorf("passage %d (%s) has %d words: %q", p.ID, p.Title, n, p.Text)
		}
	}
}

// bm25 is a plain Okapi BM25 (k1 1.2, b 0.75) over lower-cased words, to
// check that precise queries retrieve their gold passage.
type bm25 struct {
	docs  []map[string]int
	lens  []float64
	avg   float64
	df    map[string]int
	stops map[string]bool
}

func newBM25(ps []Passage) *bm25 {
	ix := &bm25{df: map[string]int{}, stops: map[string]bool{"the": true, "a": true, "is": true, "in": true, "of": true, "was": true, "by": true}}
	var sum float64
	for _, p := range ps {
		tf := map[string]int{}
		n := 0
		for _, w := range wordRE.FindAllString(strings.ToLower(p.Title+" "+p.Text), -1) {
			tf[w]++
			n++
		}
		for w := range tf {
			ix.df[w]++
		}
		ix.docs = append(ix.docs, tf)
		ix.lens = append(ix.lens, float64(n))
		sum += float64(n)
	}
	ix.avg = sum / float64(len(ps))
	return ix
}

// rank returns the 0-based rank of doc for query (ties count against it).
func (ix *bm25) rank(query string, doc int) int {
	score := func(d int) float64 {
		var s float64
		for _, w := range wordRE.FindAllString(strings.ToLower(query), -1) {
			if ix.stops[w] || ix.docs[d][w] == 0 {
				continue
			}
			idf := math.Log(1 + (float64(len(ix.docs))-float64(ix.df[w])+0.5)/(float64(ix.df[w])+0.5))
			tf := float64(ix.docs[d][w])
			s += idf * tf * 2.2 / (tf + 1.2*(0.25+0.75*ix.lens[d]/ix.avg))
		}
		return s
	}
	gold := score(doc)
	r := 0
	for d := range ix.docs {
		if d != doc && score(d) >= gold {
			r++
		}
	}
	return r
}

func TestRetrieval(t *testing.T) {
	w := mustGenerate(t, DefaultConfig())
	ix := newBM25(w.Passages)
	var n, top1 int
	for _, q := range w.Test {
		for _, s := range q.Metadata.Chain {
			n++
			var doc int
			fmt.Sscan(s.DocID, &doc)
			if r := ix.rank(s.Query, doc); r == 0 {
				top1++
			} else if r >= 3 {
				t.Errorf("%s: precise query %q ranks gold passage %s at %d", q.ID, s.Query, s.DocID, r+1)
			}
		}
	}
	if float64(top1) < 0.98*float64(n) {
		t.Errorf("precise queries: gold passage first for %d of %d", top1, n)
	}
	// Vague queries rarely find the step's passage.
	var vn, vtop3 int
	for _, x := range w.Expert[:500] {
		for _, tn := range x.Turns {
			if tn.Kind == Vague {
				vn++
				var doc int
				fmt.Sscan(tn.DocID, &doc)
				if ix.rank(tn.Query, doc) < 3 {
					vtop3++
				}
			}
		}
	}
	if vn == 0 || float64(vtop3) > 0.3*float64(vn) {
		t.Errorf("vague queries: gold passage in top 3 for %d of %d", vtop3, vn)
	}
	t.Logf("precise top-1 %d/%d; vague top-3 %d/%d", top1, n, vtop3, vn)
}

func TestConfigErrors(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"few cities":   func(c *Config) { c.Cities = c.Countries - 1 },
		"no questions": func(c *Config) { c.Train, c.Dev, c.Test = 0, 0, 0 },
		"max searches": func(c *Config) { c.MaxSearches = 2 },
		"query mix":    func(c *Config) { c.VagueFrac, c.RedundantFrac = 0.6, 0.4 },
		"words":        func(c *Config) { c.MinWords, c.MaxWords = 40, 45 },
		"too many questions": func(c *Config) {
			c.People, c.Works, c.Organisations, c.Cities, c.Countries = 10, 10, 10, 10, 3
		},
	} {
		cfg := DefaultConfig()
		mut(&cfg)
		if _, err := Generate(cfg); err == nil {
			t.Errorf("%s: Generate accepted %+v", name, cfg)
		}
	}
}

func TestDefaultWorldSize(t *testing.T) {
	w := mustGenerate(t, DefaultConfig())
	s := w.Summary()
	t.Logf("entities %v, passages %d, vocab %d, queries %v, passage words %d–%d", s.Entities, s.Passages, s.VocabSize, s.Queries, s.MinPassage, s.MaxPassage)
	if s.Passages < 1000 || s.VocabSize > 4000 {
		t.Errorf("default world: %d passages, vocab %d", s.Passages, s.VocabSize)
	}
}

func TestReadBack(t *testing.T) {
	w := mustGenerate(t, smallConfig(9))
	dir := writeWorld(t, w)
	f, err := os.Open(filepath.Join(dir, "expert.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var xs []Expert
	if err := ReadExpert(f, func(x Expert) error { xs = append(xs, x); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(xs) != len(w.Expert) || fmt.Sprint(xs[3]) != fmt.Sprint(w.Expert[3]) {
		t.Errorf("read back %d trajectories, want %d; first differs", len(xs), len(w.Expert))
	}
	g, err := os.Open(filepath.Join(dir, "test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var qs []Question
	if err := ReadQuestions(g, func(q Question) error { qs = append(qs, q); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(qs) != fmt.Sprint(w.Test) {
		t.Errorf("test questions do not read back equal")
	}
	if err := ReadQuestions(strings.NewReader("{\"id\": 1}\n"), func(Question) error { return nil }); err == nil || !strings.Contains(err.Error(), "record 1") {
		t.Errorf("bad record: err = %v", err)
	}
}
