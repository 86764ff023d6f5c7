// Command indexbench compares igsearch's BM25 index with bleve
// (github.com/blevesearch/bleve/v2) on the same corpus in the same run:
// build throughput and peak RSS (each build runs in a child process),
// index size, single-thread and all-core top-3 query throughput, p50/p99
// latency, and the fraction of postings igsearch's pruning skipped.
//
//	indexbench --corpus FILE --work DIR [--docs N] [--queries 300] [--label NAME] [--json FILE] [--ram-buffer MB]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/analysis/token/stop"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/analysis/tokenmap"
	"github.com/blevesearch/bleve/v2/mapping"
	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/index"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child-build" {
		if err := childBuild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "indexbench child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "indexbench:", err)
		os.Exit(1)
	}
}

// buildResult is what a child build reports on stdout.
type buildResult struct {
	Docs    int     `json:"docs"`
	Seconds float64 `json:"seconds"`
	RSS     int64   `json:"peak_rss_bytes"`
	Bytes   int64   `json:"index_bytes"`
	Spills  int     `json:"spills,omitempty"` // igsearch: segments written to run files
	// CPU is the child's user + system CPU time: on a machine shared with
	// other work it moves less than wall time, so docs per CPU-second
	// compares the engines' work more fairly than docs/s.
	CPU float64 `json:"cpu_seconds"`
}

type queryResult struct {
	QPS1, QPSAll float64
	P50, P99     time.Duration
}

func run() error {
	corpus := flag.String("corpus", "", "corpus JSONL (.gz/.zst)")
	work := flag.String("work", "out/bench/index-work", "scratch directory for the indexes")
	docs := flag.Int("docs", 0, "use the first N passages (0: all)")
	nq := flag.Int("queries", 300, "number of queries")
	label := flag.String("label", "", "name of the corpus in the report")
	jsonOut := flag.String("json", "", "also write the figures as JSON here")
	ramMB := flag.Int("ram-buffer", index.DefaultRAMBufferMB, "igsearch build's RAM buffer in MiB (index.BuildOptions.RAMBufferMB)")
	flag.Parse()
	if *corpus == "" {
		return fmt.Errorf("--corpus is required")
	}
	if *label == "" {
		*label = filepath.Base(*corpus)
	}
	os.MkdirAll(*work, 0o755)
	igDir, blDir := filepath.Join(*work, "igsearch"), filepath.Join(*work, "bleve")
	os.RemoveAll(igDir)
	os.RemoveAll(blDir)

	ig, err := childRun("igsearch", *corpus, igDir, *docs, *ramMB)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "igsearch build: %d docs in %.1fs (RAM buffer %d MiB, %d spills)\n", ig.Docs, ig.Seconds, *ramMB, ig.Spills)
	bl, err := childRun("bleve", *corpus, blDir, *docs, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bleve build: %d docs in %.1fs\n", bl.Docs, bl.Seconds)

	queries, err := sampleQueries(*corpus, ig.Docs, *nq)
	if err != nil {
		return err
	}
	ix, err := index.Open(igDir)
	if err != nil {
		return err
	}
	defer ix.Close()
	bidx, err := bleve.Open(blDir)
	if err != nil {
		return err
	}
	defer bidx.Close()

	var postings, scored atomic.Int64
	igTop := make([][]string, len(queries))
	igQ := measure(queries, func(i int, q string) {
		hits, st, _ := ix.SearchWithStats(q, 3)
		postings.Add(st.Postings)
		scored.Add(st.Scored)
		if igTop[i] == nil {
			for _, h := range hits {
				d, _ := ix.Doc(h.DocID)
				igTop[i] = append(igTop[i], d.ID)
			}
		}
	})
	blTop := make([][]string, len(queries))
	blQ := measure(queries, func(i int, q string) {
		mq := bleve.NewMatchQuery(q)
		mq.Analyzer = "lucene_en"
		mq.SetField("contents")
		req := bleve.NewSearchRequestOptions(mq, 3, 0, false)
		res, err := bidx.Search(req)
		if err != nil {
			panic(err)
		}
		if blTop[i] == nil {
			for _, h := range res.Hits {
				blTop[i] = append(blTop[i], h.ID)
			}
			if blTop[i] == nil {
				blTop[i] = []string{}
			}
		}
	})
	overlap, total := 0, 0
	for i := range queries {
		for _, id := range igTop[i] {
			total++
			if slices.Contains(blTop[i], id) {
				overlap++
			}
		}
	}
	skipped := 1 - float64(scored.Load())/float64(max(1, postings.Load()))

	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }
	ratio := func(a, b float64) string { return fmt.Sprintf("%.2f×", a/b) }
	igRate, blRate := float64(ig.Docs)/ig.Seconds, float64(bl.Docs)/bl.Seconds
	fmt.Printf("\n### %s: %d passages, %d top-3 queries, GOMAXPROCS %d\n\n", *label, ig.Docs, len(queries), runtime.GOMAXPROCS(0))
	fmt.Println("| metric | igsearch | bleve | igsearch/bleve |")
	fmt.Println("| --- | --- | --- | --- |")
	fmt.Printf("| build throughput | %.0f docs/s | %.0f docs/s | %s |\n", igRate, blRate, ratio(igRate, blRate))
	igCPU, blCPU := float64(ig.Docs)/ig.CPU, float64(bl.Docs)/bl.CPU
	fmt.Printf("| build work | %.0f docs per CPU-s | %.0f docs per CPU-s | %s |\n", igCPU, blCPU, ratio(igCPU, blCPU))
	fmt.Printf("| build peak RSS | %s | %s | %s |\n", mb(ig.RSS), mb(bl.RSS), ratio(float64(ig.RSS), float64(bl.RSS)))
	fmt.Printf("| index size | %s | %s | %s |\n", mb(ig.Bytes), mb(bl.Bytes), ratio(float64(ig.Bytes), float64(bl.Bytes)))
	fmt.Printf("| top-3 QPS, 1 thread | %.0f | %.0f | %s |\n", igQ.QPS1, blQ.QPS1, ratio(igQ.QPS1, blQ.QPS1))
	fmt.Printf("| top-3 QPS, all cores | %.0f | %.0f | %s |\n", igQ.QPSAll, blQ.QPSAll, ratio(igQ.QPSAll, blQ.QPSAll))
	fmt.Printf("| p50 latency | %s | %s | %s |\n", ms(igQ.P50), ms(blQ.P50), ratio(float64(igQ.P50), float64(blQ.P50)))
	fmt.Printf("| p99 latency | %s | %s | %s |\n", ms(igQ.P99), ms(blQ.P99), ratio(float64(igQ.P99), float64(blQ.P99)))
	fmt.Printf("\npostings skipped by igsearch pruning (top-3): %.1f%%; top-3 overlap with bleve's BM25: %.1f%%\n",
		100*skipped, 100*float64(overlap)/float64(max(1, total)))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"label": *label, "docs": ig.Docs, "queries": len(queries), "gomaxprocs": runtime.GOMAXPROCS(0),
			"igsearch": map[string]any{"build": ig, "qps_1": igQ.QPS1, "qps_all": igQ.QPSAll, "p50_ms": igQ.P50.Seconds() * 1e3, "p99_ms": igQ.P99.Seconds() * 1e3, "postings_skipped": skipped},
			"bleve":    map[string]any{"build": bl, "qps_1": blQ.QPS1, "qps_all": blQ.QPSAll, "p50_ms": blQ.P50.Seconds() * 1e3, "p99_ms": blQ.P99.Seconds() * 1e3},
		}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measure runs the queries once to warm up, then on one goroutine for
// throughput and latency, then on GOMAXPROCS goroutines for throughput;
// each phase repeats the query list until it has run for at least a second.
func measure(queries []string, search func(i int, q string)) queryResult {
	for i, q := range queries {
		search(i, q)
	}
	var lat []time.Duration
	start := time.Now()
	for len(lat) == 0 || time.Since(start) < time.Second {
		for i, q := range queries {
			t := time.Now()
			search(i, q)
			lat = append(lat, time.Since(t))
		}
	}
	el := time.Since(start)
	res := queryResult{QPS1: float64(len(lat)) / el.Seconds()}
	slices.Sort(lat)
	res.P50, res.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	var done atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	deadline := start.Add(time.Second)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := w; ; n++ {
				if n%len(queries) == 0 && time.Now().After(deadline) {
					return
				}
				search(n%len(queries), queries[n%len(queries)])
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	res.QPSAll = float64(done.Load()) / time.Since(start).Seconds()
	return res
}

// childRun builds one index in a child process and reads its peak RSS.
func childRun(engine, corpus, dir string, docs, ramMB int) (buildResult, error) {
	self, err := os.Executable()
	if err != nil {
		return buildResult{}, err
	}
	cmd := exec.Command(self, "child-build", engine, corpus, dir, fmt.Sprint(docs), fmt.Sprint(ramMB))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return buildResult{}, fmt.Errorf("%s build: %w", engine, err)
	}
	var r buildResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("%s build: %w", engine, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.RSS = ru.Maxrss * 1024
	}
	r.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	r.Bytes = dirSize(dir)
	return r, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// firstLines streams the first n non-blank lines of the corpus (all when
// n is 0) as uncompressed JSONL.
func firstLines(corpus string, n int) (io.ReadCloser, error) {
	rc, _, _, err := index.OpenCorpusFile(corpus)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer rc.Close()
		lr := index.NewLineReader(rc)
		buf := make([]byte, 0, 1<<20)
		for i := 0; n == 0 || i < n; i++ {
			line, _, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			buf = append(append(buf, line...), '\n')
			if len(buf) > 1<<20-1<<16 {
				if _, err := pw.Write(buf); err != nil {
					return
				}
				buf = buf[:0]
			}
		}
		pw.Write(buf)
		pw.Close()
	}()
	return pr, nil
}

func childBuild(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("want ENGINE CORPUS DIR DOCS RAM_BUFFER_MB")
	}
	engine, corpus, dir := args[0], args[1], args[2]
	var n, ramMB int
	fmt.Sscan(args[3], &n)
	fmt.Sscan(args[4], &ramMB)
	r, err := firstLines(corpus, n)
	if err != nil {
		return err
	}
	defer r.Close()
	start := time.Now()
	var docs, spills int
	switch engine {
	case "igsearch":
		st, err := index.Build(context.Background(), r, dir, index.BuildOptions{RAMBufferMB: ramMB})
		if err != nil {
			return err
		}
		docs, spills = int(st.Docs), st.Spills
	case "bleve":
		docs, err = bleveBuild(r, dir)
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown engine %q", engine)
	}
	return json.NewEncoder(os.Stdout).Encode(buildResult{Docs: docs, Seconds: time.Since(start).Seconds(), Spills: spills})
}

// luceneStop is Lucene's English stop set, so that bleve's analyzer matches
// igsearch's english analyzer as far as bleve allows: unicode (UAX#29)
// tokenizer, English possessive filter, lowercase, this stop set, and bleve's
// Porter stemmer.
var luceneStop = []any{"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"}

func bleveMapping() (*mapping.IndexMappingImpl, error) {
	im := bleve.NewIndexMapping()
	if err := im.AddCustomTokenMap("lucene_stop", map[string]any{"type": tokenmap.Name, "tokens": luceneStop}); err != nil {
		return nil, err
	}
	if err := im.AddCustomTokenFilter("lucene_stop", map[string]any{"type": stop.Name, "stop_token_map": "lucene_stop"}); err != nil {
		return nil, err
	}
	if err := im.AddCustomAnalyzer("lucene_en", map[string]any{
		"type":          custom.Name,
		"tokenizer":     unicode.Name,
		"token_filters": []any{en.PossessiveName, lowercase.Name, "lucene_stop", porter.Name},
	}); err != nil {
		return nil, err
	}
	im.DefaultAnalyzer = "lucene_en"
	im.ScoringModel = "bm25"
	im.StoreDynamic, im.IndexDynamic, im.DocValuesDynamic = false, false, false
	dm := bleve.NewDocumentStaticMapping()
	f := bleve.NewTextFieldMapping()
	f.Analyzer = "lucene_en"
	f.Store, f.Index = true, true
	f.IncludeTermVectors, f.IncludeInAll, f.DocValues = false, false, false
	dm.AddFieldMappingsAt("contents", f)
	im.DefaultMapping = dm
	return im, nil
}

func bleveBuild(r io.Reader, dir string) (int, error) {
	im, err := bleveMapping()
	if err != nil {
		return 0, err
	}
	idx, err := bleve.New(dir, im)
	if err != nil {
		return 0, err
	}
	cr := index.NewCorpusReader(r)
	b := idx.NewBatch()
	n := 0
	for {
		d, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		if err := b.Index(d.ID, map[string]any{"contents": d.Contents()}); err != nil {
			return n, err
		}
		n++
		if b.Size() == 1000 {
			if err := idx.Batch(b); err != nil {
				return n, err
			}
			b = idx.NewBatch()
		}
	}
	if b.Size() > 0 {
		if err := idx.Batch(b); err != nil {
			return n, err
		}
	}
	return n, idx.Close()
}

// sampleQueries draws n queries of 2–4 words from random passages among the
// first docs of the corpus, with a fixed seed.
func sampleQueries(corpus string, docs, n int) ([]string, error) {
	rng := rand.New(rand.NewPCG(11, 12))
	want := map[int][]int{} // passage → query slots
	for q := 0; q < n; q++ {
		d := rng.IntN(docs)
		want[d] = append(want[d], q)
	}
	out := make([]string, n)
	r, err := firstLines(corpus, docs)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cr := index.NewCorpusReader(r)
	for i := 0; ; i++ {
		d, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		slots, ok := want[i]
		if !ok {
			continue
		}
		words := strings.FieldsFunc(d.Text, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
		for _, q := range slots {
			k := 2 + rng.IntN(3)
			var qw []string
			for j := 0; j < k && len(words) > 0; j++ {
				qw = append(qw, words[rng.IntN(len(words))])
			}
			out[q] = strings.Join(qw, " ")
		}
	}
	return out, nil
}
