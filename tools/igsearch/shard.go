package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/igsearch/igsearch/atomicfile"
)

// shardFlag is the value of --shard i/n: this process does part i of n.
// The zero value (no flag) is the whole input.
type shardFlag struct{ i, n int }

// String implements pflag.Value.
func (s *shardFlag) String() string {
	if s.n <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.i, s.n)
}

// Set implements pflag.Value: "i/n" with 0 ≤ i < n.
func (s *shardFlag) Set(v string) error {
	a, b, ok := strings.Cut(v, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return fmt.Errorf("want i/n with 0 ≤ i < n (e.g. 0/3), got %q", v)
	}
	s.i, s.n = i, n
	return nil
}

// Type implements pflag.Value.
func (s *shardFlag) Type() string { return "i/n" }

// owns reports whether chunk k of the input (a run of consecutive rows)
// belongs to this shard: chunk k goes to shard k mod n.
func (s *shardFlag) owns(k int) bool { return s.n <= 1 || k%s.n == s.i }

// sharded reports whether the flag selects a part.
func (s *shardFlag) sharded() bool { return s.n > 1 }

const shardUsage = `shard i/n: this process handles chunks k with k mod n = i (chunk = --batch-size rows); ` +
	"`igsearch merge` puts the parts back together"

var mergeStage = &stage{
	name:    "merge",
	summary: "merge the JSONL outputs of a stage run as --shard 0/n … n-1/n into the unsharded output",
	usage: `igsearch merge --block B --out FILE PART0 PART1 … PARTn-1

A stage run with --shard i/n handles chunks i, i+n, i+2n, … of its input,
where a chunk is a run of consecutive rows (score-ig: --batch-size rows;
eval --records: --batch-size × --group-size rows), with the seed the whole
run gives that chunk. merge interleaves the parts' lines back in chunk order:
B lines of part 0, B of part 1, …, B of part n−1, B of part 0, … The result
is byte-identical to the unsharded run's output.

Inputs:
  PART0 … PARTn-1  the n parts, in shard order (blank lines are dropped)
  --block B        lines per chunk: the stage's chunk size in rows
  --rows N         check the merged line count (catches a part that lost
                   whole chunks at its end, which otherwise looks like a
                   shorter input)
Output:
  --out FILE       the merged JSONL, written atomically ("-": stdout)
Errors name the part whose line count does not fit the interleaving (a
missing or truncated part).

Example (3 shards of score-ig, --batch-size 256):
  for i in 0 1 2; do igsearch score-ig --model M --in T.jsonl --shard $i/3 --out part-$i.jsonl & done; wait
  igsearch merge --block 256 --out scored.jsonl part-0.jsonl part-1.jsonl part-2.jsonl
`,
	run: runMerge,
}

func runMerge(args []string) error {
	fs := newFlags("merge")
	block := fs.Int("block", 0, "lines per chunk (the stage's chunk size in rows)")
	out := fs.String("out", "", `merged JSONL ("-": stdout)`)
	rows := fs.Int("rows", -1, "check that the merge holds this many lines (-1: no check)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *block <= 0:
		return usagef("--block must be positive")
	case *out == "":
		return usagef("--out is required")
	case fs.NArg() == 0:
		return usagef("give the parts, in shard order")
	}
	var parts []io.Reader
	for _, p := range fs.Args() {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		parts = append(parts, f)
	}
	if *out == "-" {
		bw := bufio.NewWriter(os.Stdout)
		if err := mergeParts(bw, parts, fs.Args(), *block, *rows); err != nil {
			return err
		}
		return bw.Flush()
	}
	return atomicfile.Write(*out, func(w io.Writer) error { return mergeParts(w, parts, fs.Args(), *block, *rows) })
}

// mergeParts writes the non-blank lines of parts to w, block lines of each
// part in turn. Every part but the one where the data ends must hold whole
// blocks up to that point: the shards of one run differ by at most one
// chunk, and only the last chunk may be short.
//
// A part that lost whole chunks at its end looks like a shorter input; rows
// ≥ 0 checks the total and catches it.
func mergeParts(w io.Writer, parts []io.Reader, names []string, block, rows int) error {
	written := 0
	rs := make([]*bufio.Reader, len(parts))
	for i, p := range parts {
		rs[i] = bufio.NewReaderSize(p, 1<<20)
	}
	next := func(i int) ([]byte, error) {
		for {
			line, err := rs[i].ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				if line[len(line)-1] != '\n' {
					line = append(line, '\n')
				}
				return line, nil
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for k := 0; ; k++ {
		i := k % len(parts)
		for j := 0; j < block; j++ {
			line, err := next(i)
			if errors.Is(err, io.EOF) {
				if err := mergeEnd(rs, names, i, k, j); err != nil {
					return err
				}
				if rows >= 0 && written != rows {
					return fmt.Errorf("the parts hold %d lines, want %d (--rows): a part is missing its last chunks", written, rows)
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", names[i], err)
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
			written++
		}
	}
}

// mergeEnd checks, once part i ran out in chunk k after j of its lines, that
// every other part is exhausted too.
func mergeEnd(rs []*bufio.Reader, names []string, i, k, j int) error {
	for p := range rs {
		if p == i {
			continue
		}
		for {
			line, err := rs[p].ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				return fmt.Errorf("%s has lines left after %s ended in its chunk %d (line %d of the chunk): "+
					"the parts are not the shards of one run, in shard order, or one is truncated", names[p], names[i], k/len(rs), j+1)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", names[p], err)
			}
		}
	}
	return nil
}

// shardReader passes on the lines of its input that belong to one shard,
// where chunk k is the k-th run of block non-blank lines. The other lines
// become empty lines, so that a stage that skips blank lines and counts
// lines still names the input's own line numbers in its errors.
type shardReader struct {
	br      *bufio.Reader
	s       shardFlag
	block   int
	rows    int
	pending []byte
	err     error
}

func newShardReader(r io.Reader, s shardFlag, block int) io.Reader {
	if !s.sharded() {
		return r
	}
	return &shardReader{br: bufio.NewReaderSize(r, 1<<20), s: s, block: block}
}

// Read implements io.Reader.
func (r *shardReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		line, err := r.br.ReadBytes('\n')
		r.err = err
		if len(bytes.TrimSpace(line)) == 0 {
			r.pending = line
			continue
		}
		k := r.rows / r.block
		r.rows++
		switch {
		case r.s.owns(k):
			r.pending = line
		case line[len(line)-1] == '\n':
			r.pending = []byte{'\n'}
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}
