// Command tokbench measures single-core encode throughput of igsearch's
// tokenize package and of github.com/pkoukk/tiktoken-go given the same
// Qwen2.5 vocabulary, on the same text. scripts/bench.d/20-tokenize.sh runs
// it next to the Hugging Face JavaScript tokenizer (hfjs.mjs).
//
//	tokbench text --out FILE [--size BYTES]     write the benchmark text (JSONL)
//	tokbench run --tokenizer PATH --text FILE   time both Go tokenizers
//
// The text is built deterministically from files every Go installation has:
// documents alternate between English prose (the files of
// /usr/share/common-licenses when present, then the doc comments of the Go
// standard library) and code (the .go files of the standard library), about
// 4 KB each, walked in sorted path order.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/tokenize"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tokbench text|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "text":
		err = runText(os.Args[2:])
	case "run":
		err = runBench(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokbench:", err)
		os.Exit(1)
	}
}

const docSize = 4000

func runText(args []string) error {
	fs := flag.NewFlagSet("tokbench text", flag.ContinueOnError)
	out := fs.String("out", "", "JSONL file to write")
	size := fs.Int("size", 12_000_000, "bytes of text, at least")
	goroot := fs.String("goroot", runtime.GOROOT(), "Go installation whose src/ is read")
	licenses := fs.String("licenses", "/usr/share/common-licenses", "directory of license texts (prose); skipped if absent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	goFiles, err := goSources(filepath.Join(*goroot, "src"))
	if err != nil {
		return err
	}
	prose := &chunker{}
	if names, err := os.ReadDir(*licenses); err == nil {
		for _, e := range names {
			b, err := os.ReadFile(filepath.Join(*licenses, e.Name()))
			if err == nil && !e.IsDir() {
				prose.add(string(b))
			}
		}
	}
	code := &chunker{}
	var docs []string
	total := 0
	for _, p := range goFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(b)
		// Comments are scarcer than code: take a file's code only while
		// the code waiting to be paired with prose is short.
		if len(code.buf) < 1<<16 {
			code.add(src)
		}
		prose.add(docComments(src))
		for total < *size {
			pd, ok1 := prose.next()
			cd, ok2 := code.next()
			if !ok1 || !ok2 {
				// Keep what was taken; wait for more input.
				prose.unread(pd, ok1)
				code.unread(cd, ok2)
				break
			}
			docs = append(docs, pd, cd)
			total += len(pd) + len(cd)
		}
		if total >= *size {
			break
		}
	}
	if total < *size {
		return fmt.Errorf("only %d bytes of text available under %s", total, *goroot)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	h := sha256.New()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, d := range docs {
		h.Write([]byte(d))
		if err := enc.Encode(map[string]string{"text": d}); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("text: %d documents, %.2f MB (half prose, half Go code) from %s and %s, sha256 %x\n",
		len(docs), float64(total)/1e6, filepath.Join(*goroot, "src"), *licenses, h.Sum(nil)[:8])
	return nil
}

// goSources lists the standard library's .go files in sorted order, without
// testdata and vendored code.
func goSources(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// docComments returns the // comments of a Go file as paragraphs of prose.
func docComments(src string) string {
	var b strings.Builder
	in := false
	for line := range strings.SplitSeq(src, "\n") {
		t := strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(t, "// "); ok && !strings.HasPrefix(rest, "\t") {
			if in {
				b.WriteByte(' ')
			}
			b.WriteString(rest)
			in = true
		} else if in {
			b.WriteString("\n\n")
			in = false
		}
	}
	return b.String()
}

// chunker cuts a stream of text into documents of about docSize bytes at
// line ends.
type chunker struct {
	buf     string
	pending []string
}

func (c *chunker) add(s string) {
	if s != "" {
		c.buf += s
		if !strings.HasSuffix(s, "\n") {
			c.buf += "\n"
		}
	}
}

func (c *chunker) next() (string, bool) {
	if n := len(c.pending); n > 0 {
		d := c.pending[n-1]
		c.pending = c.pending[:n-1]
		return d, true
	}
	if len(c.buf) < docSize {
		return "", false
	}
	cut := strings.IndexByte(c.buf[docSize:], '\n')
	if cut < 0 {
		return "", false
	}
	cut += docSize + 1
	d := c.buf[:cut]
	c.buf = c.buf[cut:]
	return d, true
}

func (c *chunker) unread(d string, ok bool) {
	if ok {
		c.pending = append(c.pending, d)
	}
}

func readDocs(path string) ([]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var docs []string
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var row struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		docs = append(docs, row.Text)
		total += len(row.Text)
	}
	return docs, total, sc.Err()
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("tokbench run", flag.ContinueOnError)
	tokPath := fs.String("tokenizer", "", "Qwen2.5 tokenizer.json")
	textPath := fs.String("text", "", "JSONL text from tokbench text")
	passes := fs.Int("passes", 3, "timed passes over the text; the best counts")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of igsearch's passes")
	skipTiktoken := fs.Bool("skip-tiktoken", false, "time igsearch only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	runtime.GOMAXPROCS(1)
	docs, total, err := readDocs(*textPath)
	if err != nil {
		return err
	}
	t0 := time.Now()
	tok, err := tokenize.Load(*tokPath)
	if err != nil {
		return err
	}
	load := time.Since(t0)

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var ours [][]int32
	best, first := 0.0, 0.0
	ntok := 0
	for p := range *passes {
		ours = ours[:0]
		ntok = 0
		start := time.Now()
		for _, d := range docs {
			ids := tok.Encode(d)
			ntok += len(ids)
			ours = append(ours, ids)
		}
		mbps := float64(total) / 1e6 / time.Since(start).Seconds()
		if p == 0 {
			first = mbps
		}
		best = max(best, mbps)
	}
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Printf("igsearch tokenize: %7.2f MB/s  (%.2f MB, %d documents, %d tokens; best of %d passes, first pass %.2f MB/s; load %v)\n",
		best, float64(total)/1e6, len(docs), ntok, *passes, first, load.Round(time.Millisecond))
	fmt.Printf("RESULT igsearch %.4f\n", best)
	if *skipTiktoken {
		return nil
	}

	tk, err := newTiktoken(tok, *tokPath)
	if err != nil {
		return err
	}
	best = 0
	agree := 0
	firstDiff := ""
	for p := range *passes {
		start := time.Now()
		var got [][]int
		for _, d := range docs {
			got = append(got, tk.EncodeOrdinary(d))
		}
		mbps := float64(total) / 1e6 / time.Since(start).Seconds()
		best = max(best, mbps)
		if p == 0 {
			for i, ids := range got {
				want := toInt(ours[i])
				if slices.Equal(ids, want) {
					agree++
					continue
				}
				if firstDiff == "" {
					k := 0
					for k < len(ids) && k < len(want) && ids[k] == want[k] {
						k++
					}
					firstDiff = fmt.Sprintf("document %d, token %d: igsearch %v, tiktoken-go %v (%q)", i, k,
						want[k:min(k+4, len(want))], ids[k:min(k+4, len(ids))], tok.Decode(ours[i][k:min(k+4, len(want))], false))
				}
			}
		}
	}
	fmt.Printf("tiktoken-go:       %7.2f MB/s  (best of %d passes; ids equal to igsearch's on %d of %d documents)\n",
		best, *passes, agree, len(docs))
	if firstDiff != "" {
		fmt.Printf("  first difference: %s\n", firstDiff)
	}
	fmt.Printf("RESULT tiktoken %.4f\n", best)
	return nil
}

func toInt(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
