package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// This file reads postings in place from the memory-mapped postings.bin. The
// doc ids are a roaring bitmap in the portable serialisation (written by
// github.com/RoaringBitmap/roaring); rbIter decodes it directly, with seeks,
// so that whole blocks of postings can be skipped without decoding them.

const (
	rbCookieNoRuns = 12346
	rbCookieRuns   = 12347
	rbArray        = 0
	rbBitmap       = 1
	rbRun          = 2
)

var errRoaring = errors.New("malformed roaring bitmap")

type rbContainer struct {
	key  uint32 // high 16 bits, shifted into place
	card int
	kind uint8
	off  int // byte offset of the container's data
}

// rbIter iterates a serialised roaring bitmap in ascending order.
type rbIter struct {
	data []byte
	cs   []rbContainer
	ci   int
	// position inside container ci
	ai int    // array: index
	wi int    // bitmap: word index
	w  uint64 // bitmap: remaining bits of word wi
	ri int    // run: run index
	rv int    // run: next value within run ri
}

// parse reads the container directory of data, reusing cs's storage.
func (it *rbIter) parse(data []byte, cs []rbContainer) error {
	it.data, it.cs, it.ci = data, cs[:0], 0
	if len(data) < 4 {
		return errRoaring
	}
	cookie := binary.LittleEndian.Uint32(data)
	var n, pos int
	var runs []byte
	switch {
	case cookie&0xffff == rbCookieRuns:
		n = int(cookie>>16) + 1
		pos = 4 + (n+7)/8
		if pos > len(data) {
			return errRoaring
		}
		runs = data[4:pos]
	case cookie == rbCookieNoRuns:
		if len(data) < 8 {
			return errRoaring
		}
		n = int(binary.LittleEndian.Uint32(data[4:]))
		pos = 8
	default:
		return errRoaring
	}
	if n > 65536 || pos+4*n > len(data) {
		return errRoaring
	}
	desc := data[pos : pos+4*n]
	pos += 4 * n
	hasOffsets := runs == nil || n >= 4
	var offs []byte
	if hasOffsets {
		if pos+4*n > len(data) {
			return errRoaring
		}
		offs = data[pos : pos+4*n]
		pos += 4 * n
	}
	prevKey := -1
	for i := 0; i < n; i++ {
		key := int(binary.LittleEndian.Uint16(desc[4*i:]))
		if key <= prevKey {
			return errRoaring
		}
		prevKey = key
		c := rbContainer{key: uint32(key) << 16, card: int(binary.LittleEndian.Uint16(desc[4*i+2:])) + 1}
		if hasOffsets {
			c.off = int(binary.LittleEndian.Uint32(offs[4*i:]))
		} else {
			c.off = pos
		}
		var size int
		switch {
		case runs != nil && runs[i/8]&(1<<(i%8)) != 0:
			c.kind = rbRun
			if c.off+2 > len(data) {
				return errRoaring
			}
			size = 2 + 4*int(binary.LittleEndian.Uint16(data[c.off:]))
		case c.card > 4096:
			c.kind, size = rbBitmap, 8192
		default:
			c.kind, size = rbArray, 2*c.card
		}
		if c.off < 0 || c.off+size > len(data) {
			return errRoaring
		}
		pos = c.off + size
		it.cs = append(it.cs, c)
	}
	it.start()
	return nil
}

// start positions the iterator at the beginning of container ci.
func (it *rbIter) start() {
	if it.ci >= len(it.cs) {
		return
	}
	c := &it.cs[it.ci]
	switch c.kind {
	case rbArray:
		it.ai = 0
	case rbBitmap:
		it.wi = 0
		it.w = binary.LittleEndian.Uint64(it.data[c.off:])
	case rbRun:
		it.ri = 0
		it.rv = -1
	}
}

// fill writes the next values into buf and returns how many it wrote.
func (it *rbIter) fill(buf []uint32) int {
	n := 0
	for n < len(buf) && it.ci < len(it.cs) {
		c := &it.cs[it.ci]
		hi := c.key
		switch c.kind {
		case rbArray:
			d := it.data[c.off:]
			for n < len(buf) && it.ai < c.card {
				buf[n] = hi | uint32(binary.LittleEndian.Uint16(d[2*it.ai:]))
				n++
				it.ai++
			}
			if it.ai < c.card {
				return n
			}
		case rbBitmap:
			d := it.data[c.off:]
			for n < len(buf) {
				for it.w == 0 {
					it.wi++
					if it.wi == 1024 {
						break
					}
					it.w = binary.LittleEndian.Uint64(d[8*it.wi:])
				}
				if it.wi == 1024 {
					break
				}
				buf[n] = hi | uint32(it.wi*64+bits.TrailingZeros64(it.w))
				it.w &= it.w - 1
				n++
			}
			if it.wi < 1024 {
				return n
			}
		case rbRun:
			d := it.data[c.off:]
			nr := int(binary.LittleEndian.Uint16(d))
			for n < len(buf) && it.ri < nr {
				s := int(binary.LittleEndian.Uint16(d[2+4*it.ri:]))
				last := s + int(binary.LittleEndian.Uint16(d[4+4*it.ri:]))
				if it.rv < s {
					it.rv = s
				}
				for n < len(buf) && it.rv <= last {
					buf[n] = hi | uint32(it.rv)
					it.rv++
					n++
				}
				if it.rv > last {
					it.ri++
				}
			}
			if it.ri < nr {
				return n
			}
		}
		it.ci++
		it.start()
	}
	return n
}

// seek positions the iterator at the first value ≥ x.
func (it *rbIter) seek(x uint32) {
	key := x &^ 0xffff
	for it.ci < len(it.cs) && it.cs[it.ci].key < key {
		it.ci++
		it.start()
	}
	if it.ci >= len(it.cs) || it.cs[it.ci].key > key {
		return
	}
	c := &it.cs[it.ci]
	low := int(x & 0xffff)
	d := it.data[c.off:]
	switch c.kind {
	case rbArray:
		lo, hi := it.ai, c.card
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if int(binary.LittleEndian.Uint16(d[2*m:])) < low {
				lo = m + 1
			} else {
				hi = m
			}
		}
		it.ai = lo
		if it.ai < c.card {
			return
		}
	case rbBitmap:
		wi := low >> 6
		if wi > it.wi {
			it.wi = wi
			it.w = binary.LittleEndian.Uint64(d[8*wi:])
		}
		if wi == it.wi {
			it.w &= ^uint64(0) << uint(low&63)
		}
		return // fill moves on to the next container if this one is spent
	case rbRun:
		nr := int(binary.LittleEndian.Uint16(d))
		for it.ri < nr {
			s := int(binary.LittleEndian.Uint16(d[2+4*it.ri:]))
			last := s + int(binary.LittleEndian.Uint16(d[4+4*it.ri:]))
			if last >= low {
				if it.rv < low {
					it.rv = low
				}
				return
			}
			it.ri++
		}
	}
	it.ci++
	it.start()
}

// cursor walks one query term's postings block by block. Doc ids are
// decoded per block of 128; term frequencies only when asked for.
type cursor struct {
	ix     *Index
	it     rbIter
	table  []byte // block table, blockEntrySz per block
	tfData []byte
	df     int
	nb     int
	w      float32 // qtf · idf · (k1+1)
	ub     float64 // upper bound of this term's contribution
	qi     int     // index of the term in the query's canonical order

	cb        int // current block
	itBlock   int // the block rbIter will produce next
	decoded   bool
	tfDecoded bool
	n, pos    int
	docs      [blockSize]uint32
	tfs       [blockSize]uint32
	scored    int     // postings whose tf was read and scored
	bb        float64 // cached blockBound of block bbBlock−1
	bbBlock   int
	err       error
}

const noMoreDocs = ^uint32(0)

func (c *cursor) init(ix *Index, e termEntry, cs []rbContainer) error {
	c.ix = ix
	p := ix.postings[e.off:e.end()]
	if err := c.it.parse(p[:e.rbLen], cs); err != nil {
		return err
	}
	p = p[e.rbLen:]
	c.df, c.nb = int(e.df), e.nblocks()
	c.table = p[:c.nb*blockEntrySz]
	c.tfData = p[c.nb*blockEntrySz:]
	c.cb, c.itBlock, c.decoded, c.scored, c.err, c.bbBlock = 0, 0, false, 0, nil, 0
	c.decode()
	return c.err
}

func (c *cursor) blockLast(b int) uint32 {
	return binary.LittleEndian.Uint32(c.table[b*blockEntrySz:])
}

// decode decodes the doc ids of block cb.
func (c *cursor) decode() {
	if c.cb >= c.nb {
		return
	}
	if c.itBlock != c.cb {
		c.it.seek(c.blockLast(c.cb-1) + 1)
	}
	want := min(blockSize, c.df-c.cb*blockSize)
	got := c.it.fill(c.docs[:want])
	c.itBlock = c.cb + 1
	c.n, c.pos, c.decoded, c.tfDecoded = got, 0, true, false
	bad := got != want || c.docs[got-1] != c.blockLast(c.cb) || c.docs[got-1] >= c.ix.meta.numDocs
	for i := 1; i < got && !bad; i++ {
		bad = c.docs[i] <= c.docs[i-1]
	}
	if bad {
		c.fail(fmt.Errorf("block %d of a posting list does not match its bitmap", c.cb))
	}
}

func (c *cursor) fail(err error) {
	if c.err == nil {
		c.err = fmt.Errorf("postings.bin: %w: %v", ErrCorrupt, err)
	}
	c.cb, c.nb = 0, 0 // exhausted
}

// doc returns the current doc id, or noMoreDocs.
func (c *cursor) doc() uint32 {
	if c.cb >= c.nb {
		return noMoreDocs
	}
	if !c.decoded {
		c.decode()
		if c.cb >= c.nb {
			return noMoreDocs
		}
	}
	return c.docs[c.pos]
}

// next moves to the next posting.
func (c *cursor) next() {
	c.pos++
	if c.pos >= c.n {
		c.cb++
		c.decoded = false
		c.decode()
	}
}

// shallow moves to the block that may hold target without decoding it, and
// reports whether such a block exists.
func (c *cursor) shallow(target uint32) bool {
	if c.cb >= c.nb {
		return false
	}
	if c.blockLast(c.cb) >= target {
		return true
	}
	lo, hi := c.cb+1, c.nb
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.blockLast(m) < target {
			lo = m + 1
		} else {
			hi = m
		}
	}
	c.cb, c.decoded = lo, false
	return lo < c.nb
}

// advance moves to the first posting with doc ≥ target.
func (c *cursor) advance(target uint32) uint32 {
	if !c.shallow(target) {
		c.cb = c.nb
		return noMoreDocs
	}
	if !c.decoded {
		c.decode()
		if c.cb >= c.nb {
			return noMoreDocs
		}
	}
	for c.docs[c.pos] < target {
		c.pos++
	}
	return c.docs[c.pos]
}

// tf returns the term frequency of the current posting.
func (c *cursor) tf() uint32 {
	if !c.tfDecoded {
		lo := uint32(0)
		if c.cb > 0 {
			lo = binary.LittleEndian.Uint32(c.table[(c.cb-1)*blockEntrySz+4:])
		}
		hi := binary.LittleEndian.Uint32(c.table[c.cb*blockEntrySz+4:])
		if lo > hi || int(hi) > len(c.tfData) || !unpackTFs(c.tfData[lo:hi], c.tfs[:c.n]) {
			c.fail(fmt.Errorf("term frequencies of block %d out of bounds", c.cb))
			return 1
		}
		c.tfDecoded = true
	}
	return c.tfs[c.pos]
}

// score returns the current posting's contribution.
func (c *cursor) score() float32 {
	c.scored++
	d := c.docs[c.pos]
	return c.ix.p.termScore(c.w, c.tf(), c.ix.docLen(d))
}

// blockBound is an upper bound of the contribution of any posting in the
// current block.
func (c *cursor) blockBound() float64 {
	if c.bbBlock == c.cb+1 {
		return c.bb
	}
	e := c.table[c.cb*blockEntrySz:]
	p := &c.ix.p
	if p.exact {
		c.bb = p.bound(c.w, binary.LittleEndian.Uint32(e[16:]), binary.LittleEndian.Uint32(e[20:]))
	} else {
		c.bb = p.bound(c.w, binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:]))
	}
	c.bbBlock = c.cb + 1
	return c.bb
}
