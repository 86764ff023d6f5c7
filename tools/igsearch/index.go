package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/index"
)

var indexStage = &stage{
	name:    "index",
	summary: "BM25 retrieval index: build, search, serve (Search-R1 /retrieve API), stats, synth",
	usage: `igsearch index: an offline BM25 index over a passage corpus.

Usage: igsearch index build|search|serve|stats|synth [flags]

index build --corpus PATH --out DIR [--analyzer english|simple] [--workers N]
            [--skip-bad] [--lucene-norms] [--k1 0.9] [--b 0.4]
            [--ram-buffer MB] [--shard i/n]
  Input:  a JSONL corpus, plain, .gz or .zst; rows {"id","contents":"\"Title\"\ntext"}
          (Search-R1 wiki-18) or {"id","title","text"}.
  Output: the index directory DIR (written under a temporary name, renamed
          into place when complete; what a killed build left is removed). An
          existing index at DIR is replaced only with --force; a DIR holding
          anything else is refused. A malformed line stops the build with its
          line number unless --skip-bad. Progress (docs/s, ETA) on a terminal.
  --ram-buffer MB  postings held in memory by all workers together (default
          256); past it, segments spill to run files inside the temporary
          directory and are merged at the end. The index is byte-identical
          whatever the value; peak memory follows it, not the corpus size.
  --shard i/n  index only the corpus lines whose ordinal (0-based, blank
          lines not counted) is i mod n; search or serve the n shard
          directories together with --index DIR0,DIR1,… for the unsharded
          index's scores and ranking.
  Example: igsearch index build --corpus testdata/corpus/wordnet-glosses.jsonl.zst --out out/wn

index search --index DIR[,DIR…] [--k 10] (--query TEXT | --queries FILE) [--format jsonl|trec] [--k1 K --b B]
  Input:  one query, or a JSONL file of {"id": QID, "query": TEXT} ("-" for stdin).
  Output: JSONL on stdout, one line a query:
          {"id": QID, "hits": [{"doc": DOCID, "score": S, "title": T, "contents": C}]}
          or, with --format trec, run lines "QID Q0 DOCID RANK SCORE igsearch".
  Several comma-separated shard directories (index build --shard) are
  searched as one index with global BM25 statistics; hit "doc" is the
  passage's corpus id either way.
  Example: igsearch index search --index out/wn --k 3 --query "a large feline"

index serve --index DIR[,DIR…] [--addr 127.0.0.1:8000] [--k1 K --b B] [limits]
  Serves the API of Search-R1's retrieval_server.py, so Search-R1's own
  client (generation.py) works against it unchanged:
  POST /retrieve {"queries": [..], "topk": 3, "return_scores": true}
    → {"result": [[{"document": {"id", "contents"}, "score": S}]]}
    (without return_scores, each list holds just the documents)
  GET /health → {"status": "ok", "docs": N}
  "queries": [] gets {"result": []}; topk 0 or null means --topk; "contents"
  is the corpus row's, byte for byte. Bad requests get 4xx and {"error"}.
  Limits (defaults accept a Search-R1 training turn, 512 × 5 = 2,560
  queries): --topk 3 (default topk), --max-topk 100, --max-queries 8192,
  --max-body 16777216 (bytes; 413 above), --max-response 268435456 (bytes;
  413 when queries × topk × the mean passage size would pass it).
  Answers are streamed. Timeouts: --read-header-timeout 10s, --read-timeout
  60s (a stalled upload gets 408), --idle-timeout 120s, --write-timeout 60s
  (per part of an answer).
  SIGINT/SIGTERM: stops accepting, answers uploads still in progress with
  503, lets requests in flight finish for up to --shutdown-grace 10s, then
  exits 0.
  Logs "listening on http://ADDR" to stderr (use --addr 127.0.0.1:0 for a free port).
  Example: igsearch index serve --index out/wn --addr 127.0.0.1:8000

index stats --index DIR[,DIR…]
  Output: passages, terms, postings, bytes per posting and the size of each
          file; for shards, each shard's, then the passages of all.
  Example: igsearch index stats --index out/wn

index synth --docs N --out FILE [--seed 1]
  Output: a synthetic Zipf corpus of N 100-word passages in wiki-18 format
          (FILE ending .gz or .zst is compressed; "-" is stdout).
  Example: igsearch index synth --docs 1000000 --out out/synth-1m.jsonl
`,
	run: runIndex,
}

func runIndex(args []string) error {
	verb, rest, err := subVerb(args, "build", "search", "serve", "stats", "synth")
	if err != nil {
		return err
	}
	switch verb {
	case "build":
		return indexBuild(rest)
	case "search":
		return indexSearch(rest)
	case "serve":
		return indexServe(rest)
	case "stats":
		return indexStats(rest)
	default:
		return indexSynth(rest)
	}
}

func indexBuild(args []string) error {
	fs := newFlags("index build")
	corpus := fs.String("corpus", "", "corpus JSONL file (.gz, .zst or plain)")
	out := fs.String("out", "", "index directory to write")
	analyzer := fs.String("analyzer", "english", "analyzer: english or simple")
	workers := fs.Int("workers", 0, "parallel workers (0: one per CPU)")
	skipBad := fs.Bool("skip-bad", false, "skip malformed lines instead of stopping")
	norms := fs.Bool("lucene-norms", false, "quantise lengths to one byte as Lucene does (Anserini score parity)")
	k1 := fs.Float64("k1", 0.9, "BM25 k1 stored as the index default")
	b := fs.Float64("b", 0.4, "BM25 b stored as the index default")
	force := fs.Bool("force", false, "replace an index that --out already holds")
	ramMB := fs.Int("ram-buffer", index.DefaultRAMBufferMB, "MiB of postings in memory before spilling to disk")
	var shard shardFlag
	fs.Var(&shard, "shard", "index only corpus lines with ordinal ≡ i mod n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *corpus == "" || *out == "" {
		return usagef("index build needs --corpus and --out")
	}
	if *ramMB <= 0 {
		return usagef("--ram-buffer must be positive (MiB)")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit keeps the garbage collector's slack (by default the
		// heap may double before a collection) near the bound that
		// --ram-buffer promises: the buffer, the merge's working set and the
		// passage lengths (8 bytes a passage) fit in 2×buffer + 1 GiB.
		debug.SetMemoryLimit(int64(*ramMB)<<21 + 1<<30)
	}
	if err := atomicfile.Guard(*out, index.DirKind, *force, "--force"); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	var size int64
	if st, err := os.Stat(*corpus); err == nil {
		size = st.Size()
	}
	prog := newProgress("index build", "docs", size)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	st, err := index.BuildFile(ctx, *corpus, *out, index.BuildOptions{
		Analyzer: *analyzer, Workers: *workers, SkipBad: *skipBad, LuceneNorms: *norms, K1: *k1, B: *b,
		RAMBufferMB: *ramMB, Shard: shard.i, Shards: shard.n,
		Progress: func(read, lines int64) { prog.update(read, lines) },
		Skipped:  func(e *index.LineError) { fmt.Fprintf(os.Stderr, "igsearch index build: %s: skipped %v\n", *corpus, e) },
	})
	prog.finish()
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "indexed %d passages (%d skipped), %d terms, %d postings in %s (%.0f docs/s, %d spills) → %s\n",
		st.Docs, st.Skipped, st.Terms, st.Postings, el.Round(time.Millisecond), float64(st.Docs)/el.Seconds(), st.Spills, *out)
	return nil
}

// openIndexFlags opens --index with the optional --k1/--b override.
func openIndexFlags(dir string, k1, b float64) (*index.Index, error) {
	if dir == "" {
		return nil, usagef("--index is required")
	}
	return index.OpenWithOptions(dir, index.Options{K1: k1, B: b})
}

// searchIndex is what index search and serve use: one *index.Index or
// *index.Sharded.
type searchIndex interface {
	index.Retriever
	NumDocs() int
	SearchWithStats(query string, k int) ([]index.Hit, index.SearchStats, error)
	Doc(id uint32) (index.Doc, error)
	Close() error
}

// openSearchIndex opens --index: one directory, or several comma-separated
// shard directories as one index.
func openSearchIndex(spec string, k1, b float64) (searchIndex, error) {
	dirs := strings.Split(spec, ",")
	if len(dirs) == 1 {
		return openIndexFlags(spec, k1, b)
	}
	for _, d := range dirs {
		if d == "" {
			return nil, usagef("--index %q: empty shard directory name", spec)
		}
	}
	return index.OpenSharded(dirs, index.Options{K1: k1, B: b})
}

type searchHit struct {
	Doc      string        `json:"doc"`
	Score    index.Score32 `json:"score"`
	Title    string        `json:"title"`
	Contents string        `json:"contents"`
}

func indexSearch(args []string) error {
	fs := newFlags("index search")
	dir := fs.String("index", "", "index directory")
	k := fs.Int("k", 10, "hits per query")
	query := fs.String("query", "", "one query")
	queries := fs.String("queries", "", `JSONL file of {"id","query"} ("-": stdin)`)
	format := fs.String("format", "jsonl", "output: jsonl or trec")
	k1 := fs.Float64("k1", 0, "BM25 k1 (0: the index's)")
	b := fs.Float64("b", 0.4, "BM25 b (used with --k1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*query == "") == (*queries == "") {
		return usagef("give exactly one of --query and --queries")
	}
	if *format != "jsonl" && *format != "trec" {
		return usagef("--format must be jsonl or trec")
	}
	if *k <= 0 {
		return usagef("--k must be positive")
	}
	ix, err := openSearchIndex(*dir, *k1, *b)
	if err != nil {
		return err
	}
	defer ix.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	do := func(qid, q string) error {
		hits, _, err := ix.SearchWithStats(q, *k)
		if err != nil {
			return err
		}
		res := make([]searchHit, len(hits))
		for i, h := range hits {
			d, err := ix.Doc(h.DocID)
			if err != nil {
				return err
			}
			if *format == "trec" {
				fmt.Fprintf(out, "%s Q0 %s %d %.6f igsearch\n", qid, d.ID, i+1, h.Score)
				continue
			}
			res[i] = searchHit{Doc: d.ID, Score: index.Score32(h.Score), Title: d.Title, Contents: d.Contents()}
		}
		if *format == "jsonl" {
			return enc.Encode(struct {
				ID   string      `json:"id"`
				Hits []searchHit `json:"hits"`
			}{qid, res})
		}
		return nil
	}
	if *query != "" {
		return do("q1", *query)
	}
	var in io.Reader = os.Stdin
	if *queries != "-" {
		f, err := os.Open(*queries)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	lr := index.NewLineReader(in)
	for {
		line, no, err := lr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("queries %s: %w", *queries, err)
		}
		var row struct {
			ID    json.RawMessage `json:"id"`
			Query *string         `json:"query"`
		}
		if err := json.Unmarshal(line, &row); err != nil || row.Query == nil {
			return fmt.Errorf(`queries %s: line %d: want {"id": QID, "query": TEXT}`, *queries, no)
		}
		qid := string(row.ID)
		var s string
		if json.Unmarshal(row.ID, &s) == nil {
			qid = s
		}
		if err := do(qid, *row.Query); err != nil {
			return err
		}
	}
}

func indexServe(args []string) error {
	fs := newFlags("index serve")
	dir := fs.String("index", "", "index directory (or comma-separated shard directories)")
	addr := fs.String("addr", "127.0.0.1:8000", "listen address (loopback by default)")
	k1 := fs.Float64("k1", 0, "BM25 k1 (0: the index's)")
	b := fs.Float64("b", 0.4, "BM25 b (used with --k1)")
	var opt index.ServerOptions
	fs.IntVar(&opt.DefaultTopK, "topk", 3, "passages per query when a request's topk is absent, null or 0")
	fs.IntVar(&opt.MaxTopK, "max-topk", 100, "largest topk a request may ask")
	fs.IntVar(&opt.MaxQueries, "max-queries", 8192, "most queries in one request (a Search-R1 training turn sends 2,560)")
	fs.Int64Var(&opt.MaxBodyBytes, "max-body", 16<<20, "largest request body, in bytes")
	fs.Int64Var(&opt.MaxResponseBytes, "max-response", 256<<20, "largest answer, in bytes, estimated before searching (queries × topk × mean passage size)")
	fs.DurationVar(&opt.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time to read a request's headers")
	fs.DurationVar(&opt.ReadTimeout, "read-timeout", 60*time.Second, "time to read a whole request, body included")
	fs.DurationVar(&opt.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection is kept")
	fs.DurationVar(&opt.WriteTimeout, "write-timeout", 60*time.Second, "longest stall while writing one part of an answer")
	fs.DurationVar(&opt.ShutdownGrace, "shutdown-grace", 10*time.Second, "on SIGINT/SIGTERM, how long requests in flight may finish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var bad []string
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"--topk", opt.DefaultTopK > 0}, {"--max-topk", opt.MaxTopK >= opt.DefaultTopK}, {"--max-queries", opt.MaxQueries > 0},
		{"--max-body", opt.MaxBodyBytes > 0}, {"--max-response", opt.MaxResponseBytes > 0},
		{"--read-header-timeout", opt.ReadHeaderTimeout > 0}, {"--read-timeout", opt.ReadTimeout > 0}, {"--idle-timeout", opt.IdleTimeout > 0},
		{"--write-timeout", opt.WriteTimeout > 0}, {"--shutdown-grace", opt.ShutdownGrace > 0},
	} {
		if !c.ok {
			bad = append(bad, c.name)
		}
	}
	if len(bad) > 0 {
		return usagef("%s must be positive (and --max-topk at least --topk)", strings.Join(bad, ", "))
	}
	ix, err := openSearchIndex(*dir, *k1, *b)
	if err != nil {
		return err
	}
	defer ix.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	opt.Log = log.New(os.Stderr, "igsearch index serve: ", 0)
	srv := index.NewServer(ix, opt)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "igsearch index serve: %d passages from %s; listening on http://%s\n", ix.NumDocs(), *dir, ln.Addr())
	go func() {
		<-ctx.Done()
		fmt.Fprintf(os.Stderr, "igsearch index serve: shutting down (requests in flight may take up to %s)\n", opt.ShutdownGrace)
	}()
	return srv.Serve(ctx, ln)
}

func indexStats(args []string) error {
	fs := newFlags("index stats")
	dir := fs.String("index", "", "index directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if dirs := strings.Split(*dir, ","); len(dirs) > 1 {
		sh, err := index.OpenSharded(dirs, index.Options{})
		if err != nil {
			return err
		}
		defer sh.Close()
		for i := 0; i < sh.NumShards(); i++ {
			fmt.Printf("shard %d of %d: %s\n", i, sh.NumShards(), sh.Shard(i).Dir())
			printIndexStats(sh.Shard(i).Stats())
		}
		fmt.Printf("%-16s %d (dense global doc ids: %v)\n", "all passages", sh.NumDocs(), sh.Dense())
		return nil
	}
	ix, err := openIndexFlags(*dir, 0, 0)
	if err != nil {
		return err
	}
	defer ix.Close()
	printIndexStats(ix.Stats())
	return nil
}

// printIndexStats prints one index's counts and file sizes.
func printIndexStats(st index.Stats) {
	fmt.Printf("passages         %d\n", st.Docs)
	fmt.Printf("terms            %d\n", st.Terms)
	fmt.Printf("postings         %d\n", st.Postings)
	fmt.Printf("analyzer         %s\n", st.Analyzer)
	fmt.Printf("bm25             k1 %g b %g, avgdl %.2f, lucene norms %v\n", st.K1, st.B, st.AvgDL, st.LuceneNorms)
	if st.Postings > 0 {
		fmt.Printf("bytes/posting    %.3f (postings.bin)\n", float64(st.FileBytes["postings.bin"])/float64(st.Postings))
	}
	var total int64
	for _, f := range st.Files {
		fmt.Printf("%-16s %d bytes\n", f, st.FileBytes[f])
		total += st.FileBytes[f]
	}
	fmt.Printf("%-16s %d bytes\n", "total", total)
}

func indexSynth(args []string) error {
	fs := newFlags("index synth")
	docs := fs.Int("docs", 0, "passages to generate")
	out := fs.String("out", "", `corpus file to write (.gz/.zst compressed; "-": stdout)`)
	seed := fs.Uint64("seed", 1, "random seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *docs <= 0 || *out == "" {
		return usagef("index synth needs --docs N (N > 0) and --out FILE")
	}
	opt := index.SynthOptions{Docs: *docs, Seed: *seed}
	if *out == "-" {
		return index.WriteSynthCorpus(os.Stdout, opt)
	}
	tmp, err := atomicfile.Create(*out)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	w, closeW, err := index.CompressingWriter(tmp, *out)
	if err != nil {
		return err
	}
	if err := index.WriteSynthCorpus(w, opt); err != nil {
		return err
	}
	if err := closeW(); err != nil {
		return err
	}
	return tmp.Commit()
}
