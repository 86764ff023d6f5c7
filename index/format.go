package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
)

// On-disk format, version 1. index/FORMAT.md describes every field.

const (
	formatMagic   = "IGSX"
	formatVersion = 1
	headerSize    = 16

	blockSize     = 128 // postings per tf block
	blockEntrySz  = 24  // bytes per block-table entry
	termEntrySz   = 40  // bytes per term-dictionary entry
	docBlockEntry = 16  // bytes per document-store block entry
	docsPerBlock  = 16  // passages per zstd frame in the document store

	flagLuceneNorms = 1
)

// Component files of an index directory, and the kind code in each header.
var components = []struct{ file, kind string }{
	{"meta.bin", "META"},
	{"terms.bin", "TERM"},
	{"postings.bin", "POST"},
	{"doclens.bin", "DLEN"},
	{"docs.bin", "DOCS"},
	{"docblocks.bin", "DBLK"},
}

// ErrCorrupt is wrapped by every error about a damaged or truncated index.
var ErrCorrupt = errors.New("corrupt index")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func fileHeader(kind string) []byte {
	h := make([]byte, headerSize)
	copy(h, formatMagic)
	copy(h[4:], kind)
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	return h
}

// checkHeader validates the 16-byte header of a component file.
func checkHeader(b []byte, kind string) error {
	if len(b) < headerSize {
		return fmt.Errorf("%w: file is %d bytes, shorter than its %d-byte header", ErrCorrupt, len(b), headerSize)
	}
	if string(b[:4]) != formatMagic {
		return fmt.Errorf("%w: bad magic %q, want %q", ErrCorrupt, b[:4], formatMagic)
	}
	if string(b[4:8]) != kind {
		return fmt.Errorf("%w: file kind %q, want %q", ErrCorrupt, b[4:8], kind)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return fmt.Errorf("unsupported format version %d (this build reads version %d)", v, formatVersion)
	}
	return nil
}

// meta is the content of meta.bin.
type meta struct {
	flags       uint32
	k1, b       float64
	numDocs     uint32 // passages
	docCount    uint32 // passages with at least one term (Lucene's docCount)
	numTerms    uint64
	numPostings uint64
	sumTF       uint64 // total term occurrences (Lucene's sumTotalTermFreq)
	analyzer    string
	files       []fileSum
}

type fileSum struct {
	kind string
	size uint64
	crc  uint32
}

func (m *meta) encode() []byte {
	b := fileHeader("META")
	b = binary.LittleEndian.AppendUint32(b, m.flags)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.k1))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.b))
	b = binary.LittleEndian.AppendUint32(b, m.numDocs)
	b = binary.LittleEndian.AppendUint32(b, m.docCount)
	b = binary.LittleEndian.AppendUint64(b, m.numTerms)
	b = binary.LittleEndian.AppendUint64(b, m.numPostings)
	b = binary.LittleEndian.AppendUint64(b, m.sumTF)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.analyzer)))
	b = append(b, m.analyzer...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.files)))
	for _, f := range m.files {
		b = append(b, f.kind[:4]...)
		b = binary.LittleEndian.AppendUint64(b, f.size)
		b = binary.LittleEndian.AppendUint32(b, f.crc)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMeta(b []byte) (*meta, error) {
	if err := checkHeader(b, "META"); err != nil {
		return nil, err
	}
	if len(b) < headerSize+4 {
		return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch (file truncated or damaged)", ErrCorrupt)
	}
	r := reader{b: body, off: headerSize}
	m := &meta{}
	m.flags = r.u32()
	m.k1 = math.Float64frombits(r.u64())
	m.b = math.Float64frombits(r.u64())
	m.numDocs = r.u32()
	m.docCount = r.u32()
	m.numTerms = r.u64()
	m.numPostings = r.u64()
	m.sumTF = r.u64()
	m.analyzer = string(r.bytes(int(r.u16())))
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(body)) {
		return nil, fmt.Errorf("%w: %d component entries", ErrCorrupt, n)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		var f fileSum
		f.kind = string(r.bytes(4))
		f.size = r.u64()
		f.crc = r.u32()
		m.files = append(m.files, f)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, r.err)
	}
	if r.off != len(body) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(body)-r.off)
	}
	return m, nil
}

// reader decodes little-endian fields with bounds checks; the first overrun
// sets err and every later read returns zero.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.off+n > len(r.b) {
		r.err = fmt.Errorf("field at byte %d runs past the end (%d bytes)", r.off, len(r.b))
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u16() uint16 {
	if s := r.bytes(2); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if s := r.bytes(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.bytes(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// intToByte4 is Lucene's SmallFloat.intToByte4: a length quantised to one
// byte, exact below 24 and with 4 significant bits above.
func intToByte4(i uint32) byte {
	const numFree = 24 // 255 - longToInt4(MaxInt32)
	if i < numFree {
		return byte(i)
	}
	return byte(numFree + longToInt4(uint64(i)-numFree))
}

// byte4ToInt is Lucene's SmallFloat.byte4ToInt, the inverse of intToByte4.
func byte4ToInt(b byte) uint32 {
	const numFree = 24
	i := uint32(b)
	if i < numFree {
		return i
	}
	d := numFree + int4ToLong(i-numFree)
	if d > math.MaxInt32 {
		return math.MaxInt32
	}
	return uint32(d)
}

func longToInt4(i uint64) uint32 {
	numBits := 64 - bits.LeadingZeros64(i)
	if numBits < 4 {
		return uint32(i)
	}
	shift := numBits - 4
	enc := uint32(i>>uint(shift)) & 0x07
	return enc | uint32(shift+1)<<3
}

func int4ToLong(i uint32) uint64 {
	bits := uint64(i & 0x07)
	shift := int(i>>3) - 1
	if shift == -1 {
		return bits
	}
	return (bits | 0x08) << uint(shift)
}

// bm25 holds the scoring constants of one search configuration.
type bm25 struct {
	k1, b  float64
	avgdl  float64
	kA, kB float32 // k1·(1−b) and k1·b/avgdl
	exact  bool    // k1 and b equal the build's, so stored best pairs are exact
}

func newBM25(k1, b float64, sumTF uint64, docCount uint32, buildK1, buildB float64) bm25 {
	avg := 1.0
	if docCount > 0 {
		avg = float64(sumTF) / float64(docCount)
	}
	return bm25{
		k1: k1, b: b, avgdl: avg,
		kA:    float32(k1 * (1 - b)),
		kB:    float32(k1 * b / avg),
		exact: k1 == buildK1 && b == buildB,
	}
}

// idf is Lucene's BM25 idf, ln(1 + (N − df + 0.5)/(df + 0.5)), with N the
// number of passages that have at least one term.
func idf(docCount uint32, df uint32) float64 {
	return math.Log(1 + (float64(docCount)-float64(df)+0.5)/(float64(df)+0.5))
}

// termScore is one term's BM25 contribution, w·tf/(tf + k1·(1 − b + b·dl/avgdl))
// with w = qtf·idf·(k1+1), in float32 as Lucene computes it. The explicit
// conversions stop the compiler from fusing operations, so every caller gets
// bit-identical results.
func (p *bm25) termScore(w float32, tf, dl uint32) float32 {
	ftf := float32(tf)
	k := float32(p.kA + float32(p.kB*float32(dl)))
	return float32(w*ftf) / float32(ftf+k)
}

// bound is termScore(w, tf, dl) in float64 with a relative safety margin
// that covers float32 rounding, so that bound(w, tf, dl) ≥ termScore(w, tf',
// dl') for every pair that scores no higher than (tf, dl) in exact arithmetic.
func (p *bm25) bound(w float32, tf, dl uint32) float64 {
	ftf := float64(tf)
	s := float64(w) * ftf / (ftf + p.k1*(1-p.b) + p.k1*p.b*float64(dl)/p.avgdl)
	return s*(1+1e-5) + 1e-9
}

// fraction is tf/(tf + k1·(1 − b + b·dl/avgdl)) in float64, used at build
// time to find each block's best (tf, dl) pair.
func fraction(k1, b, avgdl float64, tf, dl uint32) float64 {
	ftf := float64(tf)
	return ftf / (ftf + k1*(1-b+b*float64(dl)/avgdl))
}
