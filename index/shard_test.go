package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildDir builds corpus into a fresh directory and returns it.
func buildDir(t *testing.T, corpus string, opt BuildOptions) (string, BuildStats) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ix")
	st, err := Build(context.Background(), strings.NewReader(corpus), dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return dir, st
}

// sameFiles fails unless dirs a and b hold the same files with the same bytes.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	ea, _ := os.ReadDir(a)
	eb, _ := os.ReadDir(b)
	if len(ea) != len(eb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(ea), b, len(eb))
	}
	for i, e := range ea {
		if eb[i].Name() != e.Name() {
			t.Fatalf("file %d: %s vs %s", i, e.Name(), eb[i].Name())
		}
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, _ := os.ReadFile(filepath.Join(b, e.Name()))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs (%d vs %d bytes)", e.Name(), len(x), len(y))
		}
	}
}

// TestSpilledBuildIsByteIdentical builds one corpus in memory and with a
// 1 MiB RAM buffer that forces many run files, and compares every byte.
func TestSpilledBuildIsByteIdentical(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSynthCorpus(&b, SynthOptions{Docs: 6000, Words: 100, Vocab: 20000, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	corpus := b.String() + "not json\n" + textRow("x", "a last passage about spilling")
	for _, opt := range []BuildOptions{{SkipBad: true}, {SkipBad: true, LuceneNorms: true, Analyzer: "simple"}} {
		mem := opt
		mem.Workers, mem.RAMBufferMB = 2, 4096
		ref, st := buildDir(t, corpus, mem)
		if st.Spills != 0 {
			t.Fatalf("in-memory build spilled %d times", st.Spills)
		}
		for _, w := range []int{1, 3} {
			sp := opt
			sp.Workers, sp.RAMBufferMB = w, 1
			dir, st := buildDir(t, corpus, sp)
			if st.Spills < 2 {
				t.Fatalf("workers %d: %d spills, want several", w, st.Spills)
			}
			t.Logf("analyzer %q, %d workers: %d spills", opt.Analyzer, w, st.Spills)
			sameFiles(t, ref, dir)
		}
	}
}

// TestSpillLeavesNoRunFiles checks that a cancelled build leaves its run
// files only inside its temporary directory, and that Build removes it.
func TestSpillLeavesNoRunFiles(t *testing.T) {
	var b bytes.Buffer
	WriteSynthCorpus(&b, SynthOptions{Docs: 5000, Words: 100, Vocab: 20000, Seed: 3})
	parent := t.TempDir()
	if _, err := Build(context.Background(), &b, filepath.Join(parent, "ix"), BuildOptions{Workers: 2, RAMBufferMB: 1}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "ix" {
		t.Fatalf("parent holds %v, want just ix", ents)
	}
	if _, err := os.Stat(filepath.Join(parent, "ix", spillDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("run directory left in the index: %v", err)
	}
}

// shardCorpus is a synthetic corpus with repeated passages, so that equal
// scores (ties broken by doc id) cross shard boundaries.
func shardCorpus(t *testing.T) string {
	var b bytes.Buffer
	WriteSynthCorpus(&b, SynthOptions{Docs: 3000, Words: 40, Vocab: 3000, Seed: 11})
	for i := 0; i < 7; i++ {
		b.WriteString(textRow("dup", "zebra crossing near the harbour"))
		b.WriteString("\n") // blank lines take no ordinal
	}
	return b.String()
}

func TestShardedSearchEqualsUnsharded(t *testing.T) {
	corpus := shardCorpus(t)
	refDir, _ := buildDir(t, corpus, BuildOptions{Workers: 2})
	ref, err := Open(refDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const n = 3
	var dirs []string
	for _, i := range []int{2, 0, 1} { // any order
		d, st := buildDir(t, corpus, BuildOptions{Workers: 2, Shard: i, Shards: n, RAMBufferMB: 1})
		if st.Lines != 3007 {
			t.Fatalf("shard %d read %d lines, want 3007", i, st.Lines)
		}
		dirs = append(dirs, d)
	}
	sh, err := OpenSharded(dirs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if sh.NumDocs() != ref.NumDocs() || !sh.Dense() {
		t.Fatalf("sharded: %d docs (dense %v), unsharded %d", sh.NumDocs(), sh.Dense(), ref.NumDocs())
	}
	// Queries from the corpus's own words, plus the tied duplicates.
	rng := rand.New(rand.NewPCG(5, 6))
	words := strings.Fields(strings.NewReplacer(`"`, " ", `\n`, " ", ".", " ", ",", " ", ":", " ", "{", " ", "}", " ").Replace(corpus[:20000]))
	queries := []string{"zebra harbour", "zebra crossing near the harbour", "nothingatall"}
	for i := 0; i < 60; i++ {
		q := ""
		for j := 0; j < 1+rng.IntN(4); j++ {
			q += words[rng.IntN(len(words))] + " "
		}
		queries = append(queries, q)
	}
	for _, q := range queries {
		for _, k := range []int{1, 5, 50} {
			want := ref.Search(q, k)
			got, _, err := sh.SearchWithStats(q, k)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%q k=%d: %d hits, want %d", q, k, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%q k=%d: hit %d = %+v, want %+v", q, k, i, got[i], want[i])
				}
			}
		}
	}
	if got := sh.Search("zebra crossing", 7); len(got) != 7 || got[0].DocID != 3000 || got[6].DocID != 3006 {
		t.Errorf("tied duplicates: %+v, want doc ids 3000..3006", got)
	}
	for _, d := range []uint32{0, 1, 2, 1234, 3006} {
		a, _ := ref.Doc(d)
		b, err := sh.Doc(d)
		if err != nil || a != b {
			t.Errorf("doc %d: %+v %v, want %+v", d, b, err, a)
		}
	}
	if _, err := sh.Doc(3007); err == nil {
		t.Error("doc past the end: no error")
	}
	for seed := uint64(0); seed < 5; seed++ {
		a := ref.RandomDocs(rand.New(rand.NewPCG(seed, 1)), 4, []uint32{1, 2})
		b := sh.RandomDocs(rand.New(rand.NewPCG(seed, 1)), 4, []uint32{1, 2})
		if len(a) != len(b) || len(a) != 4 {
			t.Fatalf("random docs %v vs %v", a, b)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("random docs %v vs %v", b, a)
			}
		}
	}
	res, err := sh.SearchBatch(context.Background(), []string{"zebra harbour"}, 2)
	if err != nil || len(res) != 1 || len(res[0]) != 2 || res[0][0].DocID != 3000 || res[0][0].Doc.ID != "dup" {
		t.Errorf("SearchBatch: %+v %v", res, err)
	}
}

func TestOpenShardedRefusesMismatches(t *testing.T) {
	corpus := shardCorpus(t)
	build := func(opt BuildOptions) string { d, _ := buildDir(t, corpus, opt); return d }
	s0 := build(BuildOptions{Workers: 1, Shard: 0, Shards: 2})
	s1 := build(BuildOptions{Workers: 1, Shard: 1, Shards: 2})
	s1simple := build(BuildOptions{Workers: 1, Shard: 1, Shards: 2, Analyzer: "simple"})
	s1of3 := build(BuildOptions{Workers: 1, Shard: 1, Shards: 3})
	plain := build(BuildOptions{Workers: 1})
	for _, c := range []struct {
		dirs []string
		want string
	}{
		{[]string{s0, s0}, "given twice"},
		{[]string{s0, s1simple}, "analyzer"},
		{[]string{s0, s1of3}, "of 3"},
		{[]string{s0, plain}, "not a shard"},
		{[]string{s0}, "at least 2"},
	} {
		sh, err := OpenSharded(c.dirs, Options{})
		if err == nil {
			sh.Close()
			t.Errorf("%v: no error", c.dirs)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.dirs, err, c.want)
		}
	}
	if sh, err := OpenSharded([]string{s1, s0}, Options{}); err != nil {
		t.Error(err)
	} else {
		sh.Close()
	}
	os.WriteFile(filepath.Join(s1, shardInfoFile), []byte(`{"shard": 5, "shards": 2, "lines": 1}`), 0o644)
	if _, err := OpenSharded([]string{s0, s1}, Options{}); err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), s1) {
		t.Errorf("bad shard.json: %v", err)
	}
	if _, err := Build(context.Background(), strings.NewReader(corpus), filepath.Join(t.TempDir(), "x"), BuildOptions{Shard: 2, Shards: 2}); err == nil {
		t.Error("shard 2/2 accepted")
	}
}

// TestServerOverShards serves the WordNet corpus unsharded and as 3 shards
// over loopback HTTP and compares the response bodies byte for byte.
func TestServerOverShards(t *testing.T) {
	parent := t.TempDir()
	whole := filepath.Join(parent, "whole")
	if _, err := BuildFile(context.Background(), realCorpus, whole, BuildOptions{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(parent, fmt.Sprint("shard-", i))
		if _, err := BuildFile(context.Background(), realCorpus, d, BuildOptions{Workers: 2, Shard: i, Shards: 3}); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	ix, err := Open(whole)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	sh, err := OpenSharded(dirs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	a := httptest.NewServer(NewServer(ix, ServerOptions{}))
	defer a.Close()
	b := httptest.NewServer(NewServer(sh, ServerOptions{}))
	defer b.Close()
	body := `{"queries": ["large wild cat", "stringed musical instrument", "a person who writes", "the capital of a country", "zzzz"], "topk": 10, "return_scores": true}`
	get := func(url, path, body string) string {
		var resp *http.Response
		var err error
		if body == "" {
			resp, err = http.Get(url + path)
		} else {
			resp, err = http.Post(url+path, "application/json", strings.NewReader(body))
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, out)
		}
		return string(out)
	}
	if x, y := get(a.URL, "/retrieve", body), get(b.URL, "/retrieve", body); x != y || !strings.Contains(x, `"score"`) {
		t.Errorf("sharded /retrieve differs:\n%.400s\nvs\n%.400s", y, x)
	}
	if x, y := get(a.URL, "/health", ""), get(b.URL, "/health", ""); x != y {
		t.Errorf("/health: %s vs %s", y, x)
	}
}
