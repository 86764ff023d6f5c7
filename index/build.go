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
	// RAMBufferMB bounds the postings (and their dictionaries) that the
	// workers together hold in memory, in MiB; a worker past its share
	// spills its segment to a run file in the build's temporary directory,
	// and the runs are merged at the end. 0 means DefaultRAMBufferMB. The
	// index is byte-identical whatever the value.
	RAMBufferMB int
	// Shard and Shards select one shard of the corpus: with Shards > 1 the
	// build keeps only the non-blank lines whose 0-based ordinal is Shard
	// modulo Shards, and writes shard.json beside the index files so that
	// OpenSharded can put the shards back together.
	Shard, Shards int
}

// BuildStats summarises a finished build.
type BuildStats struct {
	Docs     uint32 // passages indexed
	Skipped  int64  // malformed lines skipped (SkipBad)
	Terms    uint64
	Postings uint64
	Spills   int   // segments written to run files (0: the build fit in RAMBufferMB)
	Lines    int64 // non-blank corpus lines read, every shard's included
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
	if opt.RAMBufferMB < 0 {
		return BuildStats{}, fmt.Errorf("bad RAM buffer %d MiB (want ≥ 0; 0 is the default %d)", opt.RAMBufferMB, DefaultRAMBufferMB)
	}
	if opt.RAMBufferMB == 0 {
		opt.RAMBufferMB = DefaultRAMBufferMB
	}
	if opt.Shards < 0 || opt.Shards > 1 && (opt.Shard < 0 || opt.Shard >= opt.Shards) || opt.Shards <= 1 && opt.Shard != 0 {
		return BuildStats{}, fmt.Errorf("bad shard %d/%d (want 0 ≤ shard < shards)", opt.Shard, opt.Shards)
	}
	if opt.K1 < 0 || opt.B < 0 || opt.B > 1 {
		return BuildStats{}, fmt.Errorf("bad BM25 parameters k1=%v b=%v (want k1 ≥ 0, 0 ≤ b ≤ 1)", opt.K1, opt.B)
	}
	if err := checkDest(dir); err != nil {
		return BuildStats{}, err
	}
	tmp, err := buildTempDir(dir)
	if err != nil {
		return BuildStats{}, fmt.Errorf("index %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, spillDir), 0o755); err != nil {
		return BuildStats{}, fmt.Errorf("index %s: %w", dir, err)
	}
	b := &builder{opt: opt, an: an, dir: tmp}
	st, err := b.run(ctx, r)
	if err != nil {
		return st, err
	}
	if st.Docs == 0 && opt.Shards <= 1 {
		return st, fmt.Errorf("index %s: the corpus holds no passages (%d lines read, %d skipped): refusing to write an empty index", dir, st.Lines, st.Skipped)
	}
	if err := os.RemoveAll(filepath.Join(tmp, spillDir)); err != nil {
		return st, fmt.Errorf("index %s: removing run files: %w", dir, err)
	}
	if opt.Shards > 1 {
		if err := writeShardInfo(tmp, shardInfo{Shard: opt.Shard, Shards: opt.Shards, Lines: st.Lines}); err != nil {
			return st, fmt.Errorf("index %s: %w", dir, err)
		}
	}
	if err := replaceDir(tmp, dir); err != nil {
		return st, fmt.Errorf("index %s: %w", dir, err)
	}
	return st, nil
}

type builder struct {
	opt BuildOptions
	an  *Analyzer
	dir string

	mu    sync.Mutex
	runs  []string // run files written so far
	lines int64    // non-blank lines read (set by read)
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
	bytes int64    // estimated memory: list capacities, term strings and overheads
}

// add appends a posting to term id's list.
func (s *segment) add(id uint32, prov uint32, tf uint32) {
	p := s.posts[id]
	c := cap(p)
	p = binary.AppendUvarint(p, uint64(prov+1-s.last[id]))
	p = binary.AppendUvarint(p, uint64(tf))
	s.bytes += int64(cap(p) - c)
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
		go func(w int, seg *segment) {
			defer wg.Done()
			b.work(ctx, w, seg, batches, results)
		}(w, segs[w])
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
	st := BuildStats{Docs: uint32(len(col.dls)), Skipped: col.skipped, Spills: len(b.runs), Lines: b.lines}
	if err := b.finish(ctx, segs, col, &st); err != nil {
		return st, err
	}
	return st, nil
}

// read splits the input into batches of lines.
func (b *builder) read(ctx context.Context, r io.Reader, out chan<- *batch) error {
	lr := NewLineReader(r)
	shards := int64(max(b.opt.Shards, 1))
	shard := int64(b.opt.Shard)
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
		n++
		if (n-1)%shards != shard {
			continue
		}
		cur.data = append(cur.data, line...)
		cur.ends = append(cur.ends, len(cur.data))
		cur.lines = append(cur.lines, no)
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
	b.lines = n
	return nil
}

// work parses, analyses and compresses batches into seg, worker w's
// segment, and spills seg to a run file whenever it outgrows the worker's
// share of the RAM buffer.
func (b *builder) work(ctx context.Context, w int, seg *segment, in <-chan *batch, out chan<- *batchResult) {
	limit := int64(b.opt.RAMBufferMB) << 20 / int64(b.opt.Workers)
	spills := 0
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
						seg.bytes += int64(len(t)) + termOverhead
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
		if seg.bytes > limit && res.err == nil {
			path := spillPath(b.dir, w, spills)
			if err := seg.spill(path); err != nil {
				res.err = err
			} else {
				spills++
				b.mu.Lock()
				b.runs = append(b.runs, path)
				b.mu.Unlock()
				// The token caches name term ids of the spilled dictionary.
				clear(cache)
				*hot = hotCache{}
			}
		}
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

// appendDoc appends a passage's store record: uvarint-prefixed id, title,
// text (Doc.stored: a passage kept verbatim stores its contents as a marked
// title).
func appendDoc(b []byte, d Doc) []byte {
	for _, s := range d.stored() {
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

// finish merges the run files and the workers' last segments into the term
// dictionary and postings, streaming, and writes doclens.bin and meta.bin.
func (b *builder) finish(ctx context.Context, segs []*segment, col *collected, st *BuildStats) error {
	m := &meta{k1: b.opt.K1, b: b.opt.B, numDocs: uint32(len(col.dls)), analyzer: b.an.Name()}
	if b.opt.LuceneNorms {
		m.flags |= flagLuceneNorms
	}
	avgdl, dlFile, err := b.writeDocLens(col, m)
	if err != nil {
		return err
	}
	runs, err := b.openRuns(segs)
	defer func() {
		for _, r := range runs {
			r.close()
		}
	}()
	if err != nil {
		return err
	}
	merger, err := newTermMerger(runs)
	if err != nil {
		return err
	}
	sink, err := b.newPostingSink(m)
	if err != nil {
		return err
	}
	defer sink.abort()
	enc := postingEncoder{k1: b.opt.K1, b: b.opt.B, avgdl: avgdl, lens: col.dls, base: col.base}
	if err := b.mergePostings(ctx, merger, enc, sink); err != nil {
		return err
	}
	postFile, err := sink.postW.close()
	if err != nil {
		return err
	}
	for _, r := range runs {
		r.close()
	}
	runs = nil
	for _, p := range b.runs {
		os.Remove(p) // early, to give the disk space back; Build removes the directory anyway
	}
	termFile, err := b.writeTerms(sink, m)
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

// writeDocLens turns col's exact lengths into scoring lengths (in place: the
// exact ones are needed only here), adds the collection statistics to m,
// writes doclens.bin and returns the mean length.
func (b *builder) writeDocLens(col *collected, m *meta) (float64, fileSum, error) {
	lens := col.dls
	for i, dl := range lens {
		m.sumTF += uint64(dl)
		if dl > 0 {
			m.docCount++
		}
		if b.opt.LuceneNorms {
			lens[i] = byte4ToInt(intToByte4(dl))
		}
	}
	avgdl := 1.0
	if m.docCount > 0 {
		avgdl = float64(m.sumTF) / float64(m.docCount)
	}
	dlW, err := newCompFile(b.dir, "doclens.bin", "DLEN")
	if err != nil {
		return 0, fileSum{}, err
	}
	defer dlW.abort()
	buf := make([]byte, 0, 1<<16)
	for _, l := range lens {
		buf = binary.LittleEndian.AppendUint32(buf, l)
		if len(buf) == cap(buf) {
			dlW.Write(buf)
			buf = buf[:0]
		}
	}
	dlW.Write(buf)
	dlFile, err := dlW.close()
	return avgdl, dlFile, err
}

// openRuns opens the spilled run files, then the segments still in memory,
// in the order the merge expects. The runs opened so far are returned with
// an error too, for the caller to close.
func (b *builder) openRuns(segs []*segment) ([]run, error) {
	runs := make([]run, 0, len(b.runs)+len(segs))
	for _, p := range b.runs {
		r, err := openFileRun(p)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	for _, s := range segs {
		runs = append(runs, newMemRun(s))
	}
	return runs, nil
}

// postingSink receives the encoded chunks in term order: the postings go to
// postings.bin, while the dictionary's entries and strings go to scratch
// files, so that memory does not grow with the vocabulary (beyond 4 bytes a
// term for the string offsets).
type postingSink struct {
	m           *meta
	postW       *compFile
	entW, blobW *scratch
	offs        []byte
	blobLen     uint64
}

func (b *builder) newPostingSink(m *meta) (*postingSink, error) {
	k := &postingSink{m: m, offs: make([]byte, 0, 4096)}
	var err error
	if k.postW, err = newCompFile(b.dir, "postings.bin", "POST"); err != nil {
		return nil, err
	}
	if k.entW, err = newScratch(filepath.Join(b.dir, spillDir, "terms.entries")); err != nil {
		k.abort()
		return nil, err
	}
	if k.blobW, err = newScratch(filepath.Join(b.dir, spillDir, "terms.blob")); err != nil {
		k.abort()
		return nil, err
	}
	return k, nil
}

func (k *postingSink) abort() {
	if k.postW != nil {
		k.postW.abort()
	}
	if k.entW != nil {
		k.entW.abort()
	}
	if k.blobW != nil {
		k.blobW.abort()
	}
}

// postingChunk is a run of merged terms on its way through the encoders.
type postingChunk struct {
	terms   []mergedTerm
	data    []byte
	entries []byte
	done    chan struct{}
}

// write appends an encoded chunk: its entries' offsets become absolute in
// postings.bin.
func (k *postingSink) write(c *postingChunk) error {
	off := uint64(k.postW.n - headerSize)
	for e := 0; e < len(c.entries); e += termEntrySz {
		rel := binary.LittleEndian.Uint64(c.entries[e:])
		binary.LittleEndian.PutUint64(c.entries[e:], rel+off)
		k.m.numPostings += uint64(binary.LittleEndian.Uint32(c.entries[e+16:]))
	}
	if _, err := k.postW.Write(c.data); err != nil {
		return err
	}
	if _, err := k.entW.Write(c.entries); err != nil {
		return err
	}
	for _, t := range c.terms {
		k.offs = binary.LittleEndian.AppendUint32(k.offs, uint32(k.blobLen))
		k.blobLen += uint64(len(t.term))
		if k.blobLen > math.MaxUint32 {
			return errors.New("term dictionary larger than 4 GiB")
		}
		if _, err := k.blobW.WriteString(t.term); err != nil {
			return err
		}
	}
	k.m.numTerms += uint64(len(c.terms))
	return nil
}

// mergePostings runs the merge: a producer cuts the merged terms into
// chunks, b.opt.Workers goroutines encode them, and this goroutine hands
// them to the sink in order.
func (b *builder) mergePostings(ctx context.Context, merger *termMerger, enc postingEncoder, sink *postingSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Few chunks in flight: one of a very frequent term holds its whole
	// list (2-3 bytes a passage) from every run.
	jobs := make(chan *postingChunk, b.opt.Workers)
	order := make(chan *postingChunk, b.opt.Workers)
	var mergeErr error
	go func() {
		defer close(order)
		defer close(jobs)
		mergeErr = produceChunks(ctx, merger, jobs, order)
	}()
	var wg sync.WaitGroup
	for w := 0; w < b.opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc := enc
			for c := range jobs {
				for i := range c.terms {
					c.entries = enc.encode(c.terms[i].lists, &c.data, c.entries)
					c.terms[i].lists = nil
				}
				close(c.done)
			}
		}()
	}
	var werr error
	for c := range order {
		if werr != nil {
			continue
		}
		select {
		case <-c.done:
			werr = sink.write(c)
		case <-ctx.Done():
			werr = ctx.Err()
		}
		if werr != nil {
			cancel()
		}
	}
	wg.Wait()
	if werr != nil {
		return werr
	}
	if mergeErr != nil {
		return mergeErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sink.offs = binary.LittleEndian.AppendUint32(sink.offs, uint32(sink.blobLen))
	return nil
}

// produceChunks cuts the merger's terms into chunks of at most 2,048 terms
// or 8 MiB of lists, each sent to jobs (to encode) and to order (to write).
func produceChunks(ctx context.Context, merger *termMerger, jobs, order chan<- *postingChunk) error {
	const chunkTerms, chunkBytes = 2048, 8 << 20
	cur, size := &postingChunk{done: make(chan struct{})}, 0
	send := func() bool {
		c := cur
		cur, size = &postingChunk{done: make(chan struct{})}, 0
		select {
		case jobs <- c:
		case <-ctx.Done():
			return false
		}
		select {
		case order <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		mt, ok, err := merger.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		cur.terms = append(cur.terms, mt)
		for _, l := range mt.lists {
			size += len(l)
		}
		if (len(cur.terms) == chunkTerms || size >= chunkBytes) && !send() {
			return nil
		}
	}
	if len(cur.terms) > 0 {
		send()
	}
	return nil
}

// writeTerms writes the term dictionary: count, entries, string offsets,
// string blob.
func (b *builder) writeTerms(sink *postingSink, m *meta) (fileSum, error) {
	termW, err := newCompFile(b.dir, "terms.bin", "TERM")
	if err != nil {
		return fileSum{}, err
	}
	defer termW.abort()
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], m.numTerms)
	termW.Write(hdr[:])
	if err := sink.entW.copyTo(termW); err != nil {
		return fileSum{}, err
	}
	termW.Write(sink.offs)
	if err := sink.blobW.copyTo(termW); err != nil {
		return fileSum{}, err
	}
	return termW.close()
}

// scratch is a buffered temporary file that is written once and then
// copied into a component file.
type scratch struct {
	f *os.File
	*bufio.Writer
}

func newScratch(path string) (*scratch, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &scratch{f: f, Writer: bufio.NewWriterSize(f, 1<<20)}, nil
}

// copyTo flushes the scratch file, copies it to w and removes it.
func (s *scratch) copyTo(w io.Writer) error {
	if err := s.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", s.f.Name(), err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(w, bufio.NewReaderSize(s.f, 1<<20)); err != nil {
		return fmt.Errorf("copying %s: %w", s.f.Name(), err)
	}
	s.abort()
	return nil
}

// abort closes and removes the scratch file if copyTo did not.
func (s *scratch) abort() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
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

// encode appends the term's postings, merged from its segment lists, to
// *data and its 40-byte dictionary entry (with the postings offset relative
// to *data) to entries.
func (e *postingEncoder) encode(lists [][]byte, data *[]byte, entries []byte) []byte {
	// K-way merge of the segments' lists, mapping provisional ids to doc ids.
	e.docs, e.tfs = e.docs[:0], e.tfs[:0]
	e.heads = e.heads[:0]
	for _, l := range lists {
		r := segReader{p: l}
		r.next()
		e.heads = append(e.heads, r)
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
