package index

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"
)

// BuildOptions configures Build. The zero value builds with the english
// analyzer, one worker per CPU, k1 0.9 and b 0.4, exact lengths, and stops at
// the first malformed line.
type BuildOptions struct {
	// Analyzer is "english" (the default) or "simple".
	Analyzer string
	// Workers is the number of parallel segment builders; 0 means one per CPU.
	Workers int
	// SkipBad skips malformed corpus lines instead of stopping at the first.
	SkipBad bool
	// LuceneNorms quantises document lengths to one byte as Lucene's
	// SmallFloat.intToByte4 does, for score parity with Anserini.
	LuceneNorms bool
	// K1 and B are the BM25 parameters stored as the index's defaults;
	// 0 means 0.9 and 0.4 (Anserini's). The block upper bounds are exact
	// for these values and safe (looser) for any others.
	K1, B float64
	// Progress, when set, is called from the reading goroutine with the
	// number of input bytes consumed and of lines read so far.
	Progress func(bytesRead, lines int64)
	// Skipped, when set and SkipBad is on, is called for each skipped line,
	// in corpus order.
	Skipped func(err *LineError)
}

// BuildStats summarises a finished build.
type BuildStats struct {
	Docs     uint32 // passages indexed
	Skipped  int64  // malformed lines skipped (SkipBad)
	Terms    uint64
	Postings uint64
}

const (
	batchLines = 1024 // lines per batch; provisional doc ids are seq<<10 | i
	batchShift = 10
	batchBytes = 4 << 20
)

// BuildFile builds an index in dir from the corpus file at path, which may be
// plain, .gz or .zst JSONL. See Build.
func BuildFile(ctx context.Context, path, dir string, opt BuildOptions) (BuildStats, error) {
	rc, counter, _, err := OpenCorpusFile(path)
	if err != nil {
		return BuildStats{}, fmt.Errorf("corpus %s: %w", path, err)
	}
	defer rc.Close()
	if opt.Progress != nil {
		user := opt.Progress
		opt.Progress = func(_, lines int64) { user(counter.Count(), lines) }
	}
	st, err := Build(ctx, rc, dir, opt)
	if err != nil {
		return st, fmt.Errorf("corpus %s: %w", path, err)
	}
	return st, nil
}

// Build reads a JSONL corpus from r and writes an index to dir. Passages get
// internal doc ids in corpus line order (skipped lines take no id). The
// corpus is streamed; each worker keeps an in-memory segment of postings,
// and the segments are merged at the end. The index is written under a
// temporary name beside dir and renamed into place when complete; an existing
// index at dir is replaced.
func Build(ctx context.Context, r io.Reader, dir string, opt BuildOptions) (BuildStats, error) {
	if opt.Analyzer == "" {
		opt.Analyzer = AnalyzerEnglish
	}
	an, err := NewAnalyzer(opt.Analyzer)
	if err != nil {
		return BuildStats{}, err
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if opt.K1 == 0 {
		opt.K1 = 0.9
	}
	if opt.B == 0 && opt.K1 == 0.9 {
		opt.B = 0.4
	}
	if opt.K1 < 0 || opt.B < 0 || opt.B > 1 {
		return BuildStats{}, fmt.Errorf("bad BM25 parameters k1=%v b=%v (want k1 ≥ 0, 0 ≤ b ≤ 1)", opt.K1, opt.B)
	}
	if err := checkDest(dir); err != nil {
		return BuildStats{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return BuildStats{}, fmt.Errorf("index %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	b := &builder{opt: opt, an: an, dir: tmp}
	st, err := b.run(ctx, r)
	if err != nil {
		return st, err
	}
	if err := replaceDir(tmp, dir); err != nil {
		return st, fmt.Errorf("index %s: %w", dir, err)
	}
	return st, nil
}

// checkDest refuses to replace a directory that is neither empty nor an index.
func checkDest(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("index %s: %w", dir, err)
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "meta.bin")); err != nil {
		return fmt.Errorf("index %s: exists and is not an index; refusing to replace it", dir)
	}
	return nil
}

func replaceDir(tmp, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.Rename(old, dir)
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}

type builder struct {
	opt BuildOptions
	an  *Analyzer
	dir string
}

// batch is a run of corpus lines handed to one worker.
type batch struct {
	seq   int
	data  []byte
	ends  []int   // end offset of each line in data
	lines []int64 // line number of each line
}

// batchResult is what a worker hands back for one batch.
type batchResult struct {
	seq     int
	dls     []uint32 // exact length of each valid passage
	frames  [][]byte // zstd frames of up to docsPerBlock passages
	counts  []int    // passages per frame
	skipped []*LineError
	err     error // the batch's first malformed line when not skipping
}

// segment is one worker's in-memory postings, keyed by provisional doc id.
type segment struct {
	ids   map[string]uint32
	terms []string
	posts [][]byte // per term: uvarint (provisional id + 1 − previous), uvarint tf
	last  []uint32 // per term: last provisional id + 1
}

// add appends a posting to term id's list.
func (s *segment) add(id uint32, prov uint32, tf uint32) {
	p := s.posts[id]
	p = binary.AppendUvarint(p, uint64(prov+1-s.last[id]))
	p = binary.AppendUvarint(p, uint64(tf))
	s.posts[id] = p
	s.last[id] = prov + 1
}

// segReader decodes one segment posting list.
type segReader struct {
	p    []byte
	prov uint32 // current provisional id + 1
	tf   uint32
	ok   bool
}

func (r *segReader) next() {
	if len(r.p) == 0 {
		r.ok = false
		return
	}
	d, n := binary.Uvarint(r.p)
	tf, m := binary.Uvarint(r.p[n:])
	r.p = r.p[n+m:]
	r.prov += uint32(d)
	r.tf = uint32(tf)
	r.ok = true
}

func (b *builder) run(ctx context.Context, r io.Reader) (BuildStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	W := b.opt.Workers
	batches := make(chan *batch, 2*W)
	results := make(chan *batchResult, 2*W)
	segs := make([]*segment, W)

	var readErr error
	go func() {
		defer close(batches)
		readErr = b.read(ctx, r, batches)
	}()
	var wg sync.WaitGroup
	for w := 0; w < W; w++ {
		segs[w] = &segment{ids: make(map[string]uint32)}
		wg.Add(1)
		go func(seg *segment) {
			defer wg.Done()
			b.work(ctx, seg, batches, results)
		}(segs[w])
	}
	go func() { wg.Wait(); close(results) }()

	col, err := b.collect(ctx, results)
	if err != nil {
		cancel()
		for range results {
		}
		return BuildStats{}, err
	}
	if readErr != nil {
		return BuildStats{}, readErr
	}
	if err := ctx.Err(); err != nil {
		return BuildStats{}, err
	}
	st := BuildStats{Docs: uint32(len(col.dls)), Skipped: col.skipped}
	if err := b.finish(ctx, segs, col, &st); err != nil {
		return st, err
	}
	return st, nil
}

// read splits the input into batches of lines.
func (b *builder) read(ctx context.Context, r io.Reader, out chan<- *batch) error {
	lr := NewLineReader(r)
	seq := 0
	cur := &batch{seq: seq}
	var n int64
	send := func() bool {
		select {
		case out <- cur:
		case <-ctx.Done():
			return false
		}
		seq++
		cur = &batch{seq: seq}
		return true
	}
	for {
		line, no, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var le *LineError
			if errors.As(err, &le) {
				return err
			}
			return fmt.Errorf("reading corpus: %w", err)
		}
		if seq >= 1<<(32-batchShift) {
			return fmt.Errorf("corpus too large: more than %d lines", 1<<32)
		}
		cur.data = append(cur.data, line...)
		cur.ends = append(cur.ends, len(cur.data))
		cur.lines = append(cur.lines, no)
		n++
		if len(cur.ends) == batchLines || len(cur.data) >= batchBytes {
			if !send() {
				return ctx.Err()
			}
			if b.opt.Progress != nil {
				b.opt.Progress(0, n)
			}
		}
	}
	if len(cur.ends) > 0 && !send() {
		return ctx.Err()
	}
	if b.opt.Progress != nil {
		b.opt.Progress(0, n)
	}
	return nil
}

// work parses, analyses and compresses batches into seg.
func (b *builder) work(ctx context.Context, seg *segment, in <-chan *batch, out chan<- *batchResult) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	cache := map[string]uint32{} // token before stemming → term id
	hot := new(hotCache)
	var (
		tids  []uint32
		raw   []byte
		count int
	)
	for bt := range in {
		if ctx.Err() != nil {
			continue
		}
		res := &batchResult{seq: bt.seq}
		start := 0
		idx := 0
		flush := func() {
			if count == 0 {
				return
			}
			res.frames = append(res.frames, enc.EncodeAll(raw, nil))
			res.counts = append(res.counts, count)
			raw, count = raw[:0], 0
		}
		for i, end := range bt.ends {
			line := bt.data[start:end]
			start = end
			d, err := ParseDoc(line)
			if err != nil {
				le := &LineError{Line: bt.lines[i], Err: err}
				if !b.opt.SkipBad {
					res.err = le
					break
				}
				res.skipped = append(res.skipped, le)
				continue
			}
			prov := uint32(bt.seq)<<batchShift | uint32(idx)
			idx++
			tids = tids[:0]
			b.an.tokens(d.Contents(), func(tok string) {
				h := hotHash(tok)
				if hot.keys[h] == tok {
					tids = append(tids, hot.ids[h])
					return
				}
				id, ok := cache[tok]
				if !ok {
					t := b.an.finish(tok)
					if id, ok = seg.ids[t]; !ok {
						id = uint32(len(seg.terms))
						t = strings.Clone(t)
						seg.ids[t] = id
						seg.terms = append(seg.terms, t)
						seg.posts = append(seg.posts, nil)
						seg.last = append(seg.last, 0)
					}
					tok = strings.Clone(tok)
					cache[tok] = id
				}
				hot.keys[h], hot.ids[h] = tok, id
				tids = append(tids, id)
			})
			slices.Sort(tids)
			for j := 0; j < len(tids); {
				k := j + 1
				for k < len(tids) && tids[k] == tids[j] {
					k++
				}
				seg.add(tids[j], prov, uint32(k-j))
				j = k
			}
			res.dls = append(res.dls, uint32(len(tids)))
			raw = appendDoc(raw, d)
			count++
			if count == docsPerBlock {
				flush()
			}
		}
		flush()
		select {
		case out <- res:
		case <-ctx.Done():
		}
	}
}

// hotCache is a direct-mapped cache of token → term id in front of the
// builder's token map: with Zipf-distributed words most lookups hit it and
// stay in the CPU cache.
type hotCache struct {
	keys [hotSlots]string
	ids  [hotSlots]uint32
}

const hotSlots = 1 << 13

// hotHash is FNV-1a of tok, folded to a slot of hotCache.
func hotHash(tok string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(tok); i++ {
		h ^= uint32(tok[i])
		h *= 16777619
	}
	return (h ^ h>>15) & (hotSlots - 1)
}

// appendDoc appends a passage's store record: uvarint-prefixed id, title, text.
func appendDoc(b []byte, d Doc) []byte {
	for _, s := range []string{d.ID, d.Title, d.Text} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// collected is the ordered outcome of all batches.
type collected struct {
	dls     []uint32 // exact length of every passage, by doc id
	base    []uint32 // first doc id of each batch
	skipped int64
	docs    fileSum
	blocks  fileSum
}

// collect puts batch results in corpus order, writes the document store and
// gathers the passage lengths.
func (b *builder) collect(ctx context.Context, results <-chan *batchResult) (*collected, error) {
	docsW, err := newCompFile(b.dir, "docs.bin", "DOCS")
	if err != nil {
		return nil, err
	}
	defer docsW.abort()
	col := &collected{}
	var blockTab []byte
	pending := map[int]*batchResult{}
	next := 0
	for res := range results {
		pending[res.seq] = res
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			for _, le := range r.skipped {
				col.skipped++
				if b.opt.Skipped != nil {
					b.opt.Skipped(le)
				}
			}
			if r.err != nil {
				return nil, r.err
			}
			col.base = append(col.base, uint32(len(col.dls)))
			if uint64(len(col.dls))+uint64(len(r.dls)) >= math.MaxUint32 {
				return nil, errors.New("corpus too large: more than 2^32-1 passages")
			}
			first := uint32(len(col.dls))
			for i, fr := range r.frames {
				blockTab = binary.LittleEndian.AppendUint32(blockTab, first)
				blockTab = binary.LittleEndian.AppendUint32(blockTab, 0)
				blockTab = binary.LittleEndian.AppendUint64(blockTab, uint64(docsW.n-headerSize))
				if _, err := docsW.Write(fr); err != nil {
					return nil, err
				}
				first += uint32(r.counts[i])
			}
			col.dls = append(col.dls, r.dls...)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		return nil, errors.New("internal error: batches missing from the build")
	}
	// Sentinel entry: one past the last passage and the end of docs.bin.
	blockTab = binary.LittleEndian.AppendUint32(blockTab, uint32(len(col.dls)))
	blockTab = binary.LittleEndian.AppendUint32(blockTab, 0)
	blockTab = binary.LittleEndian.AppendUint64(blockTab, uint64(docsW.n-headerSize))
	if col.docs, err = docsW.close(); err != nil {
		return nil, err
	}
	bw, err := newCompFile(b.dir, "docblocks.bin", "DBLK")
	if err != nil {
		return nil, err
	}
	defer bw.abort()
	var cnt [8]byte
	binary.LittleEndian.PutUint64(cnt[:], uint64(len(blockTab)/docBlockEntry-1))
	bw.Write(cnt[:])
	bw.Write(blockTab)
	if col.blocks, err = bw.close(); err != nil {
		return nil, err
	}
	return col, nil
}

// mergeTerm is one term of the merged dictionary: its id in each segment
// (-1 where absent).
type mergeTerm struct {
	term string
	ids  []int32
}

// finish merges the segments into the term dictionary and postings, and
// writes doclens.bin and meta.bin.
func (b *builder) finish(ctx context.Context, segs []*segment, col *collected, st *BuildStats) error {
	m := &meta{k1: b.opt.K1, b: b.opt.B, numDocs: uint32(len(col.dls)), analyzer: b.an.Name()}
	if b.opt.LuceneNorms {
		m.flags |= flagLuceneNorms
	}
	// Scoring lengths and collection statistics.
	lens := make([]uint32, len(col.dls))
	for i, dl := range col.dls {
		m.sumTF += uint64(dl)
		if dl > 0 {
			m.docCount++
		}
		if b.opt.LuceneNorms {
			dl = byte4ToInt(intToByte4(dl))
		}
		lens[i] = dl
	}
	avgdl := 1.0
	if m.docCount > 0 {
		avgdl = float64(m.sumTF) / float64(m.docCount)
	}
	dlW, err := newCompFile(b.dir, "doclens.bin", "DLEN")
	if err != nil {
		return err
	}
	defer dlW.abort()
	buf := make([]byte, 0, 4*len(lens))
	for _, l := range lens {
		buf = binary.LittleEndian.AppendUint32(buf, l)
	}
	dlW.Write(buf)
	dlFile, err := dlW.close()
	if err != nil {
		return err
	}

	terms := mergeDicts(segs)
	m.numTerms = uint64(len(terms))

	// Encode postings in parallel chunks of terms; write them in order.
	postW, err := newCompFile(b.dir, "postings.bin", "POST")
	if err != nil {
		return err
	}
	defer postW.abort()
	type chunk struct {
		lo, hi  int
		data    []byte
		entries []byte
		done    chan struct{}
	}
	const chunkTerms = 2048
	var chunks []*chunk
	for lo := 0; lo < len(terms); lo += chunkTerms {
		chunks = append(chunks, &chunk{lo: lo, hi: min(lo+chunkTerms, len(terms)), done: make(chan struct{})})
	}
	jobs := make(chan *chunk)
	var wg sync.WaitGroup
	for w := 0; w < b.opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc := postingEncoder{k1: b.opt.K1, b: b.opt.B, avgdl: avgdl, lens: lens, base: col.base}
			for c := range jobs {
				for t := c.lo; t < c.hi; t++ {
					c.entries = enc.encode(segs, terms[t], &c.data, c.entries)
				}
				close(c.done)
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, c := range chunks {
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	entries := make([]byte, 0, termEntrySz*len(terms))
	for _, c := range chunks {
		select {
		case <-c.done:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		off := uint64(postW.n - headerSize)
		for e := 0; e < len(c.entries); e += termEntrySz {
			rel := binary.LittleEndian.Uint64(c.entries[e:])
			binary.LittleEndian.PutUint64(c.entries[e:], rel+off)
			m.numPostings += uint64(binary.LittleEndian.Uint32(c.entries[e+16:]))
		}
		entries = append(entries, c.entries...)
		if _, err := postW.Write(c.data); err != nil {
			return err
		}
		c.data, c.entries = nil, nil
	}
	wg.Wait()
	postFile, err := postW.close()
	if err != nil {
		return err
	}

	// Term dictionary: count, entries, string offsets, string blob.
	termW, err := newCompFile(b.dir, "terms.bin", "TERM")
	if err != nil {
		return err
	}
	defer termW.abort()
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(terms)))
	termW.Write(hdr[:])
	termW.Write(entries)
	offs := make([]byte, 0, 4*(len(terms)+1))
	var blobLen uint64
	for _, t := range terms {
		offs = binary.LittleEndian.AppendUint32(offs, uint32(blobLen))
		blobLen += uint64(len(t.term))
	}
	if blobLen > math.MaxUint32 {
		return errors.New("term dictionary larger than 4 GiB")
	}
	offs = binary.LittleEndian.AppendUint32(offs, uint32(blobLen))
	termW.Write(offs)
	bw := bufio.NewWriterSize(termW, 1<<20)
	for _, t := range terms {
		bw.WriteString(t.term)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	termFile, err := termW.close()
	if err != nil {
		return err
	}

	m.files = []fileSum{termFile, postFile, dlFile, col.docs, col.blocks}
	if err := writeFileSync(filepath.Join(b.dir, "meta.bin"), m.encode()); err != nil {
		return err
	}
	st.Terms, st.Postings = m.numTerms, m.numPostings
	return nil
}

// mergeDicts returns the union of the segments' terms in sorted order.
func mergeDicts(segs []*segment) []mergeTerm {
	orders := make([][]int32, len(segs))
	var wg sync.WaitGroup
	for w, s := range segs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := make([]int32, len(s.terms))
			for i := range o {
				o[i] = int32(i)
			}
			slices.SortFunc(o, func(a, b int32) int { return strings.Compare(s.terms[a], s.terms[b]) })
			orders[w] = o
		}()
	}
	wg.Wait()
	pos := make([]int, len(segs))
	var out []mergeTerm
	for {
		best := ""
		found := false
		for w, s := range segs {
			if pos[w] < len(orders[w]) {
				t := s.terms[orders[w][pos[w]]]
				if !found || t < best {
					best, found = t, true
				}
			}
		}
		if !found {
			return out
		}
		mt := mergeTerm{term: best, ids: make([]int32, len(segs))}
		for w, s := range segs {
			mt.ids[w] = -1
			if pos[w] < len(orders[w]) && s.terms[orders[w][pos[w]]] == best {
				mt.ids[w] = orders[w][pos[w]]
				pos[w]++
			}
		}
		out = append(out, mt)
	}
}

// postingEncoder turns one term's segment postings into its on-disk form.
type postingEncoder struct {
	k1, b, avgdl float64
	lens         []uint32
	base         []uint32
	docs, tfs    []uint32
	heads        []segReader
	rb           bytes.Buffer
}

// encode appends the term's postings to *data and its 40-byte dictionary
// entry (with the postings offset relative to *data) to entries.
func (e *postingEncoder) encode(segs []*segment, t mergeTerm, data *[]byte, entries []byte) []byte {
	// K-way merge of the segments' lists, mapping provisional ids to doc ids.
	e.docs, e.tfs = e.docs[:0], e.tfs[:0]
	e.heads = e.heads[:0]
	for w, id := range t.ids {
		if id >= 0 {
			r := segReader{p: segs[w].posts[id]}
			r.next()
			e.heads = append(e.heads, r)
		}
	}
	for {
		bi := -1
		for i := range e.heads {
			if e.heads[i].ok && (bi < 0 || e.heads[i].prov < e.heads[bi].prov) {
				bi = i
			}
		}
		if bi < 0 {
			break
		}
		h := &e.heads[bi]
		prov := h.prov - 1
		e.docs = append(e.docs, e.base[prov>>batchShift]+prov&(batchLines-1))
		e.tfs = append(e.tfs, h.tf)
		h.next()
	}
	rb := roaring.New()
	rb.AddMany(e.docs)
	rb.RunOptimize()
	e.rb.Reset()
	rb.WriteTo(&e.rb)

	start := uint64(len(*data))
	d := append(*data, e.rb.Bytes()...)
	df := len(e.docs)
	nb := (df + blockSize - 1) / blockSize
	tabAt := len(d)
	d = append(d, make([]byte, nb*blockEntrySz)...)
	tfStart := len(d)
	var tMax, tMin, tBestTF, tBestDL uint32 = 0, math.MaxUint32, 0, 0
	tBest := -1.0
	for bi := 0; bi < nb; bi++ {
		lo, hi := bi*blockSize, min((bi+1)*blockSize, df)
		var bMax, bMin, bBestTF, bBestDL uint32 = 0, math.MaxUint32, 0, 0
		bBest := -1.0
		for i := lo; i < hi; i++ {
			tf, dl := e.tfs[i], e.lens[e.docs[i]]
			bMax, bMin = max(bMax, tf), min(bMin, dl)
			if f := fraction(e.k1, e.b, e.avgdl, tf, dl); f > bBest {
				bBest, bBestTF, bBestDL = f, tf, dl
			}
		}
		d = packTFs(d, e.tfs[lo:hi])
		ent := d[tabAt+bi*blockEntrySz:]
		binary.LittleEndian.PutUint32(ent[0:], e.docs[hi-1])
		binary.LittleEndian.PutUint32(ent[4:], uint32(len(d)-tfStart))
		binary.LittleEndian.PutUint32(ent[8:], bMax)
		binary.LittleEndian.PutUint32(ent[12:], bMin)
		binary.LittleEndian.PutUint32(ent[16:], bBestTF)
		binary.LittleEndian.PutUint32(ent[20:], bBestDL)
		tMax, tMin = max(tMax, bMax), min(tMin, bMin)
		if bBest > tBest {
			tBest, tBestTF, tBestDL = bBest, bBestTF, bBestDL
		}
	}
	*data = d
	entries = binary.LittleEndian.AppendUint64(entries, start)
	entries = binary.LittleEndian.AppendUint32(entries, uint32(e.rb.Len()))
	entries = binary.LittleEndian.AppendUint32(entries, uint32(len(d)-tfStart))
	entries = binary.LittleEndian.AppendUint32(entries, uint32(df))
	entries = binary.LittleEndian.AppendUint32(entries, tMax)
	entries = binary.LittleEndian.AppendUint32(entries, tMin)
	entries = binary.LittleEndian.AppendUint32(entries, tBestTF)
	entries = binary.LittleEndian.AppendUint32(entries, tBestDL)
	entries = binary.LittleEndian.AppendUint32(entries, 0)
	return entries
}

// packTFs appends one block of term frequencies: a byte with the bit width w,
// then the values tf−1 packed LSB-first in w bits each.
func packTFs(d []byte, tfs []uint32) []byte {
	var mx uint32
	for _, tf := range tfs {
		mx |= tf - 1
	}
	w := bits.Len32(mx)
	d = append(d, byte(w))
	if w == 0 {
		return d
	}
	var acc uint64
	n := 0
	for _, tf := range tfs {
		acc |= uint64(tf-1) << uint(n)
		n += w
		for n >= 8 {
			d = append(d, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	if n > 0 {
		d = append(d, byte(acc))
	}
	return d
}

// unpackTFs decodes one block written by packTFs into out (len(out) values)
// and reports whether src held enough bytes.
func unpackTFs(src []byte, out []uint32) bool {
	if len(src) < 1 {
		return false
	}
	w := int(src[0])
	if w > 32 {
		return false
	}
	if w == 0 {
		for i := range out {
			out[i] = 1
		}
		return true
	}
	src = src[1:]
	if len(src) < (len(out)*w+7)/8 {
		return false
	}
	mask := uint64(1)<<uint(w) - 1
	var acc uint64
	n, p := 0, 0
	for i := range out {
		for n < w {
			acc |= uint64(src[p]) << uint(n)
			p++
			n += 8
		}
		out[i] = uint32(acc&mask) + 1
		acc >>= uint(w)
		n -= w
	}
	return true
}

// compFile writes one component file: header, body, with size and CRC-32C
// tracked for meta.bin.
type compFile struct {
	f    *os.File
	bw   *bufio.Writer
	h    hash.Hash32
	n    int64
	kind string
	err  error
}

func newCompFile(dir, name, kind string) (*compFile, error) {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	c := &compFile{f: f, bw: bufio.NewWriterSize(f, 1<<20), h: crc32.New(castagnoli), kind: kind}
	c.Write(fileHeader(kind))
	return c, nil
}

// Write appends p to the file body, updating size and checksum.
func (c *compFile) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.bw.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err != nil {
		c.err = fmt.Errorf("writing %s: %w", c.f.Name(), err)
	}
	return n, c.err
}

func (c *compFile) close() (fileSum, error) {
	if c.f == nil {
		return fileSum{}, errors.New("file already closed")
	}
	err := c.err
	if err == nil {
		err = c.bw.Flush()
	}
	if err == nil {
		err = c.f.Sync()
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	c.f = nil
	if err != nil {
		return fileSum{}, err
	}
	return fileSum{kind: c.kind, size: uint64(c.n), crc: c.h.Sum32()}, nil
}

// abort closes the file if close was not called (on an error path).
func (c *compFile) abort() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
