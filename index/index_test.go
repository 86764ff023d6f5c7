package index

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

const realCorpus = "../testdata/corpus/wordnet-glosses.jsonl.zst"

// buildString builds an index from an in-memory corpus.
func buildString(t testing.TB, corpus string, opt BuildOptions) *Index {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ix")
	if _, err := Build(context.Background(), strings.NewReader(corpus), dir, opt); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// synthCorpus returns a small synthetic corpus.
func synthCorpus(t testing.TB, docs int, seed uint64) string {
	var b bytes.Buffer
	if err := WriteSynthCorpus(&b, SynthOptions{Docs: docs, Words: 40, Vocab: 3000, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func textRow(id, text string) string {
	b, _ := json.Marshal(map[string]string{"id": id, "title": "", "text": text})
	return string(b) + "\n"
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5*math.Max(1, math.Abs(b)) }

// TestBM25HandComputed checks scores against values worked out by hand with
// idf = ln(1 + (N − df + 0.5)/(df + 0.5)) and k1 0.9, b 0.4.
func TestBM25HandComputed(t *testing.T) {
	corpus := textRow("d0", "apple banana apple") + textRow("d1", "banana cherry") + textRow("d2", "cherry cherry cherry date")
	ix := buildString(t, corpus, BuildOptions{Analyzer: "simple"})
	check := func(q string, want map[uint32]float64) {
		t.Helper()
		hits := ix.Search(q, 10)
		if len(hits) != len(want) {
			t.Fatalf("%q: %d hits %v, want %d", q, len(hits), hits, len(want))
		}
		for _, h := range hits {
			if w, ok := want[h.DocID]; !ok || !near(float64(h.Score), w) {
				t.Errorf("%q: doc %d score %v, want %v", q, h.DocID, h.Score, w)
			}
		}
		for i := 1; i < len(hits); i++ {
			if hits[i].Score > hits[i-1].Score {
				t.Errorf("%q: hits not in score order: %v", q, hits)
			}
		}
	}
	check("apple", map[uint32]float64{0: 1.2852245384291585})
	check("banana cherry", map[uint32]float64{0: 0.47000362924573563, 1: 1.0033785343448287, 2: 0.6664230563932072})
	// A repeated query term counts twice (Anserini's bag of words).
	check("apple apple", map[uint32]float64{0: 2 * 1.2852245384291585})
	check("unknownword", map[uint32]float64{})
	if got := ix.Search("banana cherry", 1); len(got) != 1 || got[0].DocID != 1 {
		t.Errorf("top-1 = %v, want doc 1", got)
	}
}

func TestSmallFloat(t *testing.T) {
	for i := uint32(0); i < 24; i++ {
		if intToByte4(i) != byte(i) || byte4ToInt(byte(i)) != i {
			t.Errorf("%d not exact", i)
		}
	}
	// Worked by hand from Lucene's SmallFloat: 100−24 = 76 = 0b1001100,
	// 7 bits, shift 3, mantissa 0b001, so 24 + (1 | 4<<3) = 57 → 24 + 9<<3 = 96.
	if b := intToByte4(100); b != 57 {
		t.Errorf("intToByte4(100) = %d, want 57", b)
	}
	if v := byte4ToInt(57); v != 96 {
		t.Errorf("byte4ToInt(57) = %d, want 96", v)
	}
	if byte4ToInt(255) != 2013265944 || intToByte4(math.MaxInt32) != 255 {
		t.Errorf("top of the range: %d %d", byte4ToInt(255), intToByte4(math.MaxInt32))
	}
	prev := uint32(0)
	for b := 0; b < 256; b++ {
		v := byte4ToInt(byte(b))
		if b > 0 && v <= prev {
			t.Fatalf("byte4ToInt not increasing at %d", b)
		}
		if intToByte4(v) != byte(b) {
			t.Fatalf("intToByte4(byte4ToInt(%d)) = %d", b, intToByte4(v))
		}
		prev = v
	}
}

func TestLuceneNorms(t *testing.T) {
	long := strings.Repeat("filler ", 99) + "target"
	corpus := textRow("a", long) + textRow("b", "target word")
	ix := buildString(t, corpus, BuildOptions{Analyzer: "simple", LuceneNorms: true})
	// N=2, df=1, avgdl = 102/2 = 51 (exact), dl(a) = 96 after quantisation.
	idf := math.Log(1 + (2-1+0.5)/(1+0.5))
	idfTarget := math.Log(1 + (2-2+0.5)/(2+0.5)) // "target" is in both
	want := idfTarget * 1.9 / (1 + 0.9*(1-0.4+0.4*96/51.0))
	hits := ix.Search("filler", 1)
	wantF := idf * 99 * 1.9 / (99 + 0.9*(1-0.4+0.4*96/51.0))
	if len(hits) != 1 || !near(float64(hits[0].Score), wantF) {
		t.Errorf("filler: %v, want score %v", hits, wantF)
	}
	hits = ix.Search("target", 2)
	if len(hits) != 2 || hits[1].DocID != 0 || !near(float64(hits[1].Score), want) {
		t.Errorf("target: %v, want doc 0 second with %v", hits, want)
	}
	if !ix.Stats().LuceneNorms {
		t.Error("stats do not report lucene norms")
	}
}

// TestPrunedEqualsExhaustive checks MaxScore against exhaustive scoring on
// random queries, with exact and loose bounds and with quantised norms.
func TestPrunedEqualsExhaustive(t *testing.T) {
	corpus := synthCorpus(t, 6000, 7)
	vocab := make([]string, 400)
	for i := range vocab {
		vocab[i] = synthWord(i * i % 3000)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, cfg := range []struct {
		name  string
		build BuildOptions
		open  Options
	}{
		{"exact", BuildOptions{Workers: 3}, Options{}},
		{"override-k1-b", BuildOptions{Workers: 2}, Options{K1: 1.2, B: 0.75}},
		{"lucene-norms", BuildOptions{Workers: 1, LuceneNorms: true}, Options{}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ix")
			if _, err := Build(context.Background(), strings.NewReader(corpus), dir, cfg.build); err != nil {
				t.Fatal(err)
			}
			ix, err := OpenWithOptions(dir, cfg.open)
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			var total SearchStats
			for q := 0; q < 150; q++ {
				n := 1 + rng.IntN(8)
				var words []string
				for i := 0; i < n; i++ {
					words = append(words, vocab[rng.IntN(len(vocab))])
				}
				query := strings.Join(words, " ")
				for _, k := range []int{1, 3, 10, 50} {
					got, st, err := ix.SearchWithStats(query, k)
					if err != nil {
						t.Fatal(err)
					}
					want, err := ix.exhaustive(query, k)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("query %q k=%d:\npruned     %v\nexhaustive %v", query, k, got, want)
					}
					if k == 3 {
						total.Postings += st.Postings
						total.Scored += st.Scored
					}
				}
			}
			if total.Scored >= total.Postings {
				t.Errorf("pruning skipped nothing: scored %d of %d postings", total.Scored, total.Postings)
			}
			t.Logf("top-3: scored %d of %d postings (%.1f%% skipped)", total.Scored, total.Postings, 100*(1-float64(total.Scored)/float64(total.Postings)))
		})
	}
}

// TestTiesBreakBySmallerDocID uses identical passages, which tie exactly.
func TestTiesBreakBySmallerDocID(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 300; i++ {
		text := "alpha beta"
		if i%7 == 3 {
			text = "alpha gamma"
		}
		b.WriteString(textRow(fmt.Sprint(i), text))
	}
	ix := buildString(t, b.String(), BuildOptions{Analyzer: "simple", Workers: 2})
	hits := ix.Search("alpha", 5)
	for i, h := range hits {
		if h.DocID != uint32(i) {
			t.Fatalf("tie order: %v", hits)
		}
	}
	hits = ix.Search("gamma alpha", 3)
	if hits[0].DocID != 3 || hits[1].DocID != 10 || hits[2].DocID != 17 {
		t.Fatalf("gamma alpha: %v", hits)
	}
}

// TestRoundTrip builds from every input form and checks doc ids, stored
// passages and search over the real-text corpus.
func TestRoundTrip(t *testing.T) {
	raw, err := os.ReadFile(realCorpus)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := zstd.NewReader(nil)
	plain, err := dec.DecodeAll(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	inputs := map[string][]byte{"c.jsonl": plain, "c.jsonl.gz": gz.Bytes(), "c.jsonl.zst": raw}
	var ref *Index
	for name, data := range inputs {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, data, 0o644)
		dir := filepath.Join(tmp, "ix-"+name)
		st, err := BuildFile(context.Background(), p, dir, BuildOptions{Workers: 3})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Docs != 8020 {
			t.Fatalf("%s: %d docs", name, st.Docs)
		}
		ix, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		if ref == nil {
			ref = ix
			continue
		}
		for _, q := range []string{"large wild cat", "musical instrument with strings", "a"} {
			if a, b := fmt.Sprint(ref.Search(q, 5)), fmt.Sprint(ix.Search(q, 5)); a != b {
				t.Errorf("%s: %q differs: %s vs %s", name, q, a, b)
			}
		}
	}
	// Doc ids follow corpus line order, and the store gives back each row.
	lines := strings.Split(strings.TrimSpace(string(plain)), "\n")
	if ref.NumDocs() != len(lines) {
		t.Fatalf("NumDocs %d, corpus %d lines", ref.NumDocs(), len(lines))
	}
	for _, i := range []int{0, 1, 15, 16, 17, 4000, len(lines) - 1} {
		want, _ := ParseDoc([]byte(lines[i]))
		got, err := ref.Doc(uint32(i))
		if err != nil || got != want {
			t.Errorf("Doc(%d) = %+v, %v; want %+v", i, got, err, want)
		}
		var row struct{ Contents string }
		json.Unmarshal([]byte(lines[i]), &row)
		if got.Contents() != row.Contents {
			t.Errorf("Doc(%d).Contents() = %q, want %q", i, got.Contents(), row.Contents)
		}
	}
	if _, err := ref.Doc(uint32(len(lines))); err == nil {
		t.Error("Doc past the end succeeded")
	}
	hits := ref.Search("tiger cat striped coat", 3)
	d, _ := ref.Doc(hits[0].DocID)
	if d.Title != "tiger cat" {
		t.Errorf("top hit %q, want tiger cat", d.Title)
	}
}

func TestBothRowFormats(t *testing.T) {
	corpus := `{"id": "0", "contents": "\"Paris\"\nCapital of France."}
{"id": 7, "title": "Rome", "text": "Capital of Italy."}

{"id": "x", "text": "no title here"}
`
	ix := buildString(t, corpus, BuildOptions{})
	want := []Doc{{ID: "0", Title: "Paris", Text: "Capital of France."}, {ID: "7", Title: "Rome", Text: "Capital of Italy."}, {ID: "x", Text: "no title here"}}
	for i, w := range want {
		if d, err := ix.Doc(uint32(i)); err != nil || d != w {
			t.Errorf("doc %d = %+v %v, want %+v", i, d, err, w)
		}
	}
	// The title is indexed too.
	if h := ix.Search("rome", 1); len(h) != 1 || h[0].DocID != 1 {
		t.Errorf("title search: %v", h)
	}
}

func TestMalformedLines(t *testing.T) {
	corpus := textRow("a", "one") + "{not json\n" + textRow("b", "two") + `{"id": "c"}` + "\n" + `{"text": "no id"}` + "\n" + textRow("d", "three")
	dir := filepath.Join(t.TempDir(), "ix")
	_, err := Build(context.Background(), strings.NewReader(corpus), dir, BuildOptions{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("want an error at line 2, got %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("failed build left %s behind", dir)
	}
	var skipped []int64
	st, err := Build(context.Background(), strings.NewReader(corpus), dir, BuildOptions{SkipBad: true, Skipped: func(e *LineError) { skipped = append(skipped, e.Line) }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Docs != 3 || st.Skipped != 3 || fmt.Sprint(skipped) != "[2 4 5]" {
		t.Errorf("docs %d skipped %d at %v; want 3 docs, lines [2 4 5]", st.Docs, st.Skipped, skipped)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for i, id := range []string{"a", "b", "d"} {
		if d, _ := ix.Doc(uint32(i)); d.ID != id {
			t.Errorf("doc %d is %q, want %q", i, d.ID, id)
		}
	}
	// The reader reports line numbers too, and goes on after a bad line.
	cr := NewCorpusReader(strings.NewReader(corpus))
	var lines []string
	for {
		d, err := cr.Next()
		if err != nil && errors.As(err, &le) {
			lines = append(lines, fmt.Sprint(le.Line))
			continue
		}
		if err != nil {
			break
		}
		lines = append(lines, d.ID)
	}
	if got := strings.Join(lines, " "); got != "a 2 b 4 5 d" {
		t.Errorf("reader sequence %q", got)
	}
}

func TestBuildReplacesAndCancels(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ix")
	for _, text := range []string{"first version", "second version"} {
		if _, err := Build(context.Background(), strings.NewReader(textRow("a", text)), dir, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Search("second", 1)) != 1 || len(ix.Search("first", 1)) != 0 {
		t.Error("rebuild did not replace the index")
	}
	ix.Close()
	// A directory that is not an index is never replaced.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious.txt"), []byte("x"), 0o644)
	if _, err := Build(context.Background(), strings.NewReader(textRow("a", "x")), other, BuildOptions{}); err == nil {
		t.Error("build replaced a non-index directory")
	}
	// A cancelled build leaves nothing behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := filepath.Join(t.TempDir(), "never")
	if _, err := Build(ctx, strings.NewReader(synthCorpus(t, 3000, 1)), dst, BuildOptions{}); err == nil {
		t.Error("cancelled build succeeded")
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 0 {
		t.Errorf("cancelled build left %v", ents)
	}
}

func TestRandomDocs(t *testing.T) {
	ix := buildString(t, synthCorpus(t, 50, 3), BuildOptions{})
	exclude := []uint32{0, 5, 9, 49}
	a := ix.RandomDocs(rand.New(rand.NewPCG(42, 0)), 10, exclude)
	b := ix.RandomDocs(rand.New(rand.NewPCG(42, 0)), 10, exclude)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 10 {
		t.Fatalf("not deterministic: %v vs %v", a, b)
	}
	counts := make([]int, 50)
	rng := rand.New(rand.NewPCG(7, 0))
	const rounds = 4000
	for r := 0; r < rounds; r++ {
		n := 3
		if r%2 == 0 {
			n = 40 // dense path
		}
		got := ix.RandomDocs(rng, n, exclude)
		if len(got) != n {
			t.Fatalf("%d docs, want %d", len(got), n)
		}
		seen := map[uint32]bool{}
		for _, d := range got {
			if seen[d] || d >= 50 || d == 0 || d == 5 || d == 9 || d == 49 {
				t.Fatalf("bad draw %v", got)
			}
			seen[d] = true
			counts[d]++
		}
	}
	// Uniform over the 46 eligible docs: each expects rounds/2·(3+40)/46.
	exp := float64(rounds/2) * 43 / 46
	for d, c := range counts {
		if d == 0 || d == 5 || d == 9 || d == 49 {
			continue
		}
		if math.Abs(float64(c)-exp) > 0.08*exp {
			t.Errorf("doc %d drawn %d times, expected about %.0f", d, c, exp)
		}
	}
	if got := ix.RandomDocs(rng, 100, exclude); len(got) != 46 {
		t.Errorf("asking for more than exist gave %d", len(got))
	}
}

// TestRoaringIter checks the in-place decoder against the roaring library on
// bitmaps with array, bitmap and run containers.
func TestRoaringIter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 40; round++ {
		var docs []uint32
		x := uint32(rng.IntN(1000))
		for x < 400000 && len(docs) < 60000 {
			docs = append(docs, x)
			switch round % 4 {
			case 0:
				x += 1 + uint32(rng.IntN(40)) // arrays
			case 1:
				x += 1 + uint32(rng.IntN(3)) // bitmaps
			case 2:
				x++ // runs
				if rng.IntN(500) == 0 {
					x += 70000
				}
			default:
				x += 1 + uint32(rng.ExpFloat64()*300)
			}
		}
		ix := &Index{meta: &meta{numDocs: 1 << 30}}
		var enc postingEncoder
		enc.lens = make([]uint32, 1<<20)
		enc.k1, enc.b, enc.avgdl = 0.9, 0.4, 1
		enc.base = make([]uint32, 1<<20)
		for i := range enc.base {
			enc.base[i] = uint32(i) << batchShift
		}
		seg := &segment{posts: [][]byte{nil}, last: []uint32{0}}
		for i, d := range docs {
			seg.add(0, d, uint32(1+i%5))
		}
		var data []byte
		entries := enc.encode([][]byte{seg.posts[0]}, &data, nil)
		ix.entries, ix.postings = entries, data
		var c cursor
		if err := c.init(ix, ix.entry(0), nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(docs); i++ {
			if c.doc() != docs[i] || c.tf() != uint32(1+i%5) {
				t.Fatalf("round %d: posting %d = (%d, %d), want (%d, %d)", round, i, c.doc(), c.tf(), docs[i], 1+i%5)
			}
			c.next()
		}
		if c.doc() != noMoreDocs {
			t.Fatalf("round %d: cursor not exhausted", round)
		}
		// Random forward seeks.
		c.init(ix, ix.entry(0), nil)
		j := 0
		for target := uint32(0); ; target += uint32(rng.IntN(5000)) {
			for j < len(docs) && docs[j] < target {
				j++
			}
			got := c.advance(target)
			if j == len(docs) {
				if got != noMoreDocs {
					t.Fatalf("round %d: advance(%d) = %d past the end", round, target, got)
				}
				break
			}
			if got != docs[j] || c.tf() != uint32(1+j%5) {
				t.Fatalf("round %d: advance(%d) = %d, want %d", round, target, got, docs[j])
			}
		}
		if c.err != nil {
			t.Fatal(c.err)
		}
	}
}
