package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Bounded-memory builds. A worker whose segment grows past its share of
// BuildOptions.RAMBufferMB writes the segment to a run file and starts an
// empty one. At the end, the run files and the workers' last in-memory
// segments are merged in one streaming, multi-way pass: terms come out in
// sorted order, each term's lists are merged by provisional doc id, and the
// encoded postings go straight to postings.bin. The encoding depends only on
// each term's (doc id, tf) list, so the index is byte-identical whatever the
// buffer size and however many runs there were.
//
// A run file lives in the build's temporary directory (spillDir) and is
// removed before the index is renamed into place; a killed build leaves it
// inside the ".NAME.tmp-*" directory with everything else. Its layout, in
// byte-wise term order, is a sequence of records:
//
//	uvarint len(term), term bytes, uvarint len(list), list bytes
//
// where a list is the segment's encoding: per posting, uvarint (provisional
// id + 1 − previous provisional id + 1), uvarint tf; the first delta counts
// from 0.

// spillDir is the subdirectory of the build's temporary directory that holds
// run files and the term dictionary's parts while they are being written.
const spillDir = "spill"

// DefaultRAMBufferMB is the default BuildOptions.RAMBufferMB: the postings
// that all workers together hold in memory before spilling to disk.
const DefaultRAMBufferMB = 256

// termOverhead estimates the bytes a segment spends on one dictionary term
// besides its string and postings: the map entry, the slice headers, and the
// worker's token-cache entry.
const termOverhead = 120

// spill writes seg's postings to a new run file at path in sorted term order
// and empties seg.
func (s *segment) spill(path string) error {
	order := make([]int32, 0, len(s.terms))
	for i := range s.terms {
		if len(s.posts[i]) > 0 {
			order = append(order, int32(i))
		}
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(s.terms[a], s.terms[b]) })
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("spilling a segment: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var hdr []byte
	for _, id := range order {
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(s.terms[id])))
		hdr = append(hdr, s.terms[id]...)
		hdr = binary.AppendUvarint(hdr, uint64(len(s.posts[id])))
		bw.Write(hdr)
		bw.Write(s.posts[id])
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spilling a segment to %s: %w", path, err)
	}
	s.reset()
	return nil
}

// reset empties the segment, dictionary included.
func (s *segment) reset() {
	clear(s.ids)
	s.terms, s.posts, s.last, s.bytes = nil, nil, nil, 0
}

// run is a sorted source of (term, segment list) pairs: a run file or an
// in-memory segment.
type run interface {
	// next returns the next term and its list; ok is false at the end.
	next() (term string, list []byte, ok bool, err error)
	close() error
}

// memRun yields an in-memory segment's terms in sorted order. Its lists
// alias the segment's.
type memRun struct {
	seg   *segment
	order []int32
	pos   int
}

func newMemRun(s *segment) *memRun {
	order := make([]int32, 0, len(s.terms))
	for i := range s.terms {
		if len(s.posts[i]) > 0 {
			order = append(order, int32(i))
		}
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(s.terms[a], s.terms[b]) })
	return &memRun{seg: s, order: order}
}

func (r *memRun) next() (string, []byte, bool, error) {
	if r.pos >= len(r.order) {
		return "", nil, false, nil
	}
	id := r.order[r.pos]
	r.pos++
	return r.seg.terms[id], r.seg.posts[id], true, nil
}

func (r *memRun) close() error { return nil }

// fileRun streams a run file. Each list it returns is a fresh allocation.
type fileRun struct {
	path string
	f    *os.File
	br   *bufio.Reader
	prev string
}

func openFileRun(path string) (*fileRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("run file: %w", err)
	}
	return &fileRun{path: path, f: f, br: bufio.NewReaderSize(f, 1<<20)}, nil
}

func (r *fileRun) next() (string, []byte, bool, error) {
	n, err := binary.ReadUvarint(r.br)
	if err == io.EOF {
		return "", nil, false, nil
	}
	bad := func(err error) (string, []byte, bool, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", nil, false, fmt.Errorf("run file %s: %w", r.path, err)
	}
	if err != nil {
		return bad(err)
	}
	if n == 0 || n > 1<<20 {
		return bad(fmt.Errorf("bad term length %d", n))
	}
	tb := make([]byte, n)
	if _, err := io.ReadFull(r.br, tb); err != nil {
		return bad(err)
	}
	m, err := binary.ReadUvarint(r.br)
	if err != nil {
		return bad(err)
	}
	if m == 0 || m > 1<<40 {
		return bad(fmt.Errorf("bad list length %d", m))
	}
	list := make([]byte, m)
	if _, err := io.ReadFull(r.br, list); err != nil {
		return bad(err)
	}
	t := string(tb)
	if t <= r.prev {
		return bad(fmt.Errorf("terms out of order: %q after %q", t, r.prev))
	}
	r.prev = t
	return t, list, true, nil
}

func (r *fileRun) close() error { return r.f.Close() }

// mergedTerm is one term of the merged dictionary with its lists from every
// run that holds it.
type mergedTerm struct {
	term  string
	lists [][]byte
}

// termMerger merges sorted runs into one sorted sequence of terms, with a
// min-heap of the runs keyed by their current term.
type termMerger struct {
	runs  []run
	heads []string
	lists [][]byte
	heap  []int // indices into runs
}

func newTermMerger(runs []run) (*termMerger, error) {
	m := &termMerger{runs: runs, heads: make([]string, len(runs)), lists: make([][]byte, len(runs))}
	for i, r := range runs {
		t, l, ok, err := r.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m.heads[i], m.lists[i] = t, l
			m.push(i)
		}
	}
	return m, nil
}

func (m *termMerger) less(a, b int) bool { return m.heads[m.heap[a]] < m.heads[m.heap[b]] }

func (m *termMerger) push(i int) {
	m.heap = append(m.heap, i)
	j := len(m.heap) - 1
	for j > 0 {
		p := (j - 1) / 2
		if !m.less(j, p) {
			break
		}
		m.heap[j], m.heap[p] = m.heap[p], m.heap[j]
		j = p
	}
}

// fix restores the heap after the root's key grew or the root was removed.
func (m *termMerger) fix() {
	j, n := 0, len(m.heap)
	for {
		l, s := 2*j+1, j
		if l < n && m.less(l, s) {
			s = l
		}
		if r := l + 1; r < n && m.less(r, s) {
			s = r
		}
		if s == j {
			return
		}
		m.heap[j], m.heap[s] = m.heap[s], m.heap[j]
		j = s
	}
}

// next returns the next term in sorted order with the lists of every run
// that holds it; ok is false when all runs are exhausted.
func (m *termMerger) next() (mergedTerm, bool, error) {
	if len(m.heap) == 0 {
		return mergedTerm{}, false, nil
	}
	mt := mergedTerm{term: m.heads[m.heap[0]]}
	for len(m.heap) > 0 && m.heads[m.heap[0]] == mt.term {
		i := m.heap[0]
		mt.lists = append(mt.lists, m.lists[i])
		t, l, ok, err := m.runs[i].next()
		if err != nil {
			return mergedTerm{}, false, err
		}
		if ok {
			m.heads[i], m.lists[i] = t, l
		} else {
			m.heads[i], m.lists[i] = "", nil
			last := len(m.heap) - 1
			m.heap[0] = m.heap[last]
			m.heap = m.heap[:last]
		}
		m.fix()
	}
	return mt, true, nil
}

// spillPath names the k-th run file of worker w.
func spillPath(dir string, w, k int) string {
	return filepath.Join(dir, spillDir, fmt.Sprintf("run-%03d-%05d", w, k))
}
