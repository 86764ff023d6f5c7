package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

// Index is an open, read-only BM25 index. Its files are memory-mapped. All
// methods are safe for concurrent use, except Close, which must not overlap
// with any other call.
type Index struct {
	dir  string
	meta *meta
	an   *Analyzer
	p    bm25

	maps     [][]byte
	entries  []byte // term dictionary entries, termEntrySz each
	termOffs []byte // (numTerms+1) uint32 offsets into termBlob
	termBlob []byte
	postings []byte
	lens     []byte // uint32 per doc
	docs     []byte
	dblocks  []byte // (n+1) entries of docBlockEntry bytes
	nblocks  int

	zdec *zstd.Decoder
}

// Options adjusts how an index is searched. The zero value uses the BM25
// parameters stored at build time.
type Options struct {
	// K1 and B override the stored BM25 parameters when K1 > 0.
	K1, B float64
}

// Open memory-maps the index in dir and checks it: headers, sizes and the
// CRC-32C of every file except the document store (whose zstd frames carry
// their own checksums). A damaged or truncated file gives an error that
// names the file and wraps ErrCorrupt.
func Open(dir string) (*Index, error) {
	return OpenWithOptions(dir, Options{})
}

// OpenWithOptions is Open with search options.
func OpenWithOptions(dir string, opt Options) (*Index, error) {
	ix, err := open(dir, opt)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	return ix, nil
}

func open(dir string, opt Options) (*Index, error) {
	mb, err := os.ReadFile(filepath.Join(dir, "meta.bin"))
	if err != nil {
		return nil, err
	}
	m, err := decodeMeta(mb)
	if err != nil {
		return nil, fmt.Errorf("meta.bin: %w", err)
	}
	an, err := NewAnalyzer(m.analyzer)
	if err != nil {
		return nil, fmt.Errorf("meta.bin: %w: %v", ErrCorrupt, err)
	}
	ix := &Index{dir: dir, meta: m, an: an}
	ok := false
	defer func() {
		if !ok {
			ix.Close()
		}
	}()
	sums := map[string]fileSum{}
	for _, f := range m.files {
		sums[f.kind] = f
	}
	data := map[string][]byte{}
	for _, c := range components[1:] {
		sum, found := sums[c.kind]
		if !found {
			return nil, fmt.Errorf("meta.bin: %w: no entry for %s", ErrCorrupt, c.file)
		}
		b, err := ix.mmap(filepath.Join(dir, c.file))
		if err != nil {
			return nil, err
		}
		if uint64(len(b)) != sum.size {
			return nil, fmt.Errorf("%s: %w: size %d bytes, meta.bin records %d (truncated or damaged)", c.file, ErrCorrupt, len(b), sum.size)
		}
		if err := checkHeader(b, c.kind); err != nil {
			return nil, fmt.Errorf("%s: %w", c.file, err)
		}
		if c.kind != "DOCS" && crc32.Checksum(b, castagnoli) != sum.crc {
			return nil, fmt.Errorf("%s: %w: checksum mismatch", c.file, ErrCorrupt)
		}
		data[c.kind] = b[headerSize:]
	}
	if err := ix.layout(data); err != nil {
		return nil, err
	}
	k1, b := m.k1, m.b
	if opt.K1 > 0 {
		k1, b = opt.K1, opt.B
	}
	ix.p = newBM25(k1, b, m.sumTF, m.docCount, m.k1, m.b)
	ix.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	if err != nil {
		return nil, err
	}
	ok = true
	return ix, nil
}

// layout slices the component files and checks their structure.
func (ix *Index) layout(data map[string][]byte) error {
	m := ix.meta
	t := data["TERM"]
	if len(t) < 8 {
		return fmt.Errorf("terms.bin: %w: truncated", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(t)
	if n != m.numTerms || n > uint64(len(t))/termEntrySz {
		return fmt.Errorf("terms.bin: %w: %d terms, meta.bin records %d", ErrCorrupt, n, m.numTerms)
	}
	t = t[8:]
	ix.entries = t[:n*termEntrySz]
	t = t[n*termEntrySz:]
	if uint64(len(t)) < 4*(n+1) {
		return fmt.Errorf("terms.bin: %w: offsets truncated", ErrCorrupt)
	}
	ix.termOffs = t[:4*(n+1)]
	ix.termBlob = t[4*(n+1):]
	if got := binary.LittleEndian.Uint32(ix.termOffs[4*n:]); uint64(got) != uint64(len(ix.termBlob)) {
		return fmt.Errorf("terms.bin: %w: string blob is %d bytes, offsets say %d", ErrCorrupt, len(ix.termBlob), got)
	}
	prev := uint32(0)
	for i := uint64(0); i <= n; i++ {
		o := binary.LittleEndian.Uint32(ix.termOffs[4*i:])
		if o < prev {
			return fmt.Errorf("terms.bin: %w: term offsets not ascending at term %d", ErrCorrupt, i)
		}
		prev = o
	}
	ix.postings = data["POST"]
	for i := uint64(0); i < n; i++ {
		e := ix.entry(int(i))
		if e.df == 0 || uint64(e.df) > uint64(m.numDocs) || e.end() > uint64(len(ix.postings)) || e.end() < e.off {
			return fmt.Errorf("terms.bin: %w: entry %d (df %d) points outside postings.bin", ErrCorrupt, i, e.df)
		}
	}
	ix.lens = data["DLEN"]
	if uint64(len(ix.lens)) != 4*uint64(m.numDocs) {
		return fmt.Errorf("doclens.bin: %w: %d bytes for %d passages", ErrCorrupt, len(ix.lens), m.numDocs)
	}
	ix.docs = data["DOCS"]
	bl := data["DBLK"]
	if len(bl) < 8 {
		return fmt.Errorf("docblocks.bin: %w: truncated", ErrCorrupt)
	}
	nb := binary.LittleEndian.Uint64(bl)
	if nb > uint64(len(bl))/docBlockEntry || uint64(len(bl)-8) != (nb+1)*docBlockEntry {
		return fmt.Errorf("docblocks.bin: %w: %d blocks in %d bytes", ErrCorrupt, nb, len(bl))
	}
	ix.dblocks, ix.nblocks = bl[8:], int(nb)
	var pd uint32
	var po uint64
	for i := 0; i <= ix.nblocks; i++ {
		d, o := ix.dblock(i)
		if d < pd || o < po || o > uint64(len(ix.docs)) || (i == ix.nblocks && (d != m.numDocs || o != uint64(len(ix.docs)))) || (i < ix.nblocks && d >= m.numDocs) {
			return fmt.Errorf("docblocks.bin: %w: bad entry %d", ErrCorrupt, i)
		}
		pd, po = d, o
	}
	return nil
}

func (ix *Index) mmap(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	ix.maps = append(ix.maps, b)
	return b, nil
}

// Close unmaps the index. The Index must not be used afterwards.
func (ix *Index) Close() error {
	var first error
	for _, b := range ix.maps {
		if err := syscall.Munmap(b); err != nil && first == nil {
			first = err
		}
	}
	ix.maps = nil
	if ix.zdec != nil {
		ix.zdec.Close()
		ix.zdec = nil
	}
	return first
}

// NumDocs returns the number of passages; internal doc ids are 0..NumDocs()-1
// in corpus order.
func (ix *Index) NumDocs() int { return int(ix.meta.numDocs) }

// NumTerms returns the size of the term dictionary.
func (ix *Index) NumTerms() int { return int(ix.meta.numTerms) }

// Analyzer returns the analyzer the index was built with; queries go
// through it.
func (ix *Index) Analyzer() *Analyzer { return ix.an }

// Dir returns the directory the index was opened from.
func (ix *Index) Dir() string { return ix.dir }

// termEntry is a decoded term-dictionary entry.
type termEntry struct {
	off            uint64
	rbLen, tfLen   uint32
	df             uint32
	maxTF, minDL   uint32
	bestTF, bestDL uint32
}

func (e termEntry) nblocks() int { return (int(e.df) + blockSize - 1) / blockSize }

func (e termEntry) end() uint64 {
	return e.off + uint64(e.rbLen) + uint64(e.nblocks())*blockEntrySz + uint64(e.tfLen)
}

func (ix *Index) entry(i int) termEntry {
	b := ix.entries[i*termEntrySz:]
	return termEntry{
		off:    binary.LittleEndian.Uint64(b),
		rbLen:  binary.LittleEndian.Uint32(b[8:]),
		tfLen:  binary.LittleEndian.Uint32(b[12:]),
		df:     binary.LittleEndian.Uint32(b[16:]),
		maxTF:  binary.LittleEndian.Uint32(b[20:]),
		minDL:  binary.LittleEndian.Uint32(b[24:]),
		bestTF: binary.LittleEndian.Uint32(b[28:]),
		bestDL: binary.LittleEndian.Uint32(b[32:]),
	}
}

func (ix *Index) termAt(i int) []byte {
	lo := binary.LittleEndian.Uint32(ix.termOffs[4*i:])
	hi := binary.LittleEndian.Uint32(ix.termOffs[4*i+4:])
	return ix.termBlob[lo:hi]
}

// lookup finds a term by binary search in the sorted dictionary.
func (ix *Index) lookup(term string) (int, bool) {
	n := int(ix.meta.numTerms)
	i := sort.Search(n, func(i int) bool { return string(ix.termAt(i)) >= term })
	if i < n && string(ix.termAt(i)) == term {
		return i, true
	}
	return 0, false
}

// DocFreq returns the number of passages that contain the (analysed) term.
func (ix *Index) DocFreq(term string) int {
	if i, ok := ix.lookup(term); ok {
		return int(ix.entry(i).df)
	}
	return 0
}

func (ix *Index) docLen(doc uint32) uint32 {
	return binary.LittleEndian.Uint32(ix.lens[4*uint64(doc):])
}

func (ix *Index) dblock(i int) (first uint32, off uint64) {
	b := ix.dblocks[i*docBlockEntry:]
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint64(b[8:])
}

// Doc returns the stored passage with internal id doc.
func (ix *Index) Doc(doc uint32) (Doc, error) {
	if doc >= ix.meta.numDocs {
		return Doc{}, fmt.Errorf("index %s: doc %d out of range (%d passages)", ix.dir, doc, ix.meta.numDocs)
	}
	// The block whose first doc is the last one ≤ doc.
	bi := sort.Search(ix.nblocks, func(i int) bool { f, _ := ix.dblock(i + 1); return f > doc })
	first, off := ix.dblock(bi)
	_, end := ix.dblock(bi + 1)
	frame := ix.docs[off:end]
	raw, err := ix.zdec.DecodeAll(frame, nil)
	if err != nil {
		return Doc{}, fmt.Errorf("index %s: docs.bin: %w: block %d: %v", ix.dir, ErrCorrupt, bi, err)
	}
	r := bytes.NewReader(raw)
	for i := first; ; i++ {
		var f [3]string
		for j := range f {
			n, err := binary.ReadUvarint(r)
			if err != nil || n > uint64(r.Len()) {
				return Doc{}, fmt.Errorf("index %s: docs.bin: %w: block %d: bad record", ix.dir, ErrCorrupt, bi)
			}
			if i == doc {
				s := make([]byte, n)
				r.Read(s)
				f[j] = string(s)
			} else {
				r.Seek(int64(n), 1)
			}
		}
		if i == doc {
			return storedDoc(f), nil
		}
	}
}

// RandomDocs returns n distinct internal doc ids drawn uniformly from the
// passages not in exclude. The result depends only on rng's state, so a
// seeded rng gives the same draw every time. If fewer than n passages are
// eligible it returns all of them, in random order.
func (ix *Index) RandomDocs(rng *rand.Rand, n int, exclude []uint32) []uint32 {
	return randomDocs(rng, ix.meta.numDocs, n, exclude)
}

func randomDocs(rng *rand.Rand, numDocs uint32, n int, exclude []uint32) []uint32 {
	ex := make(map[uint32]bool, len(exclude))
	for _, d := range exclude {
		if d < numDocs {
			ex[d] = true
		}
	}
	avail := int(numDocs) - len(ex)
	if n > avail {
		n = avail
	}
	if n <= 0 {
		return nil
	}
	out := make([]uint32, 0, n)
	if n*2 >= avail {
		// Dense: shuffle the eligible ids.
		all := make([]uint32, 0, avail)
		for d := uint32(0); d < numDocs; d++ {
			if !ex[d] {
				all = append(all, d)
			}
		}
		for i := 0; i < n; i++ {
			j := i + rng.IntN(len(all)-i)
			all[i], all[j] = all[j], all[i]
		}
		return append(out, all[:n]...)
	}
	seen := make(map[uint32]bool, n)
	for len(out) < n {
		d := uint32(rng.Uint64N(uint64(numDocs)))
		if ex[d] || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, d)
	}
	return out
}
