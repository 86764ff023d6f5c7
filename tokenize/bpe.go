package tokenize

import (
	"container/heap"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"unicode/utf8"
)

// bpe is the BPE model: merges applied in rank order to the symbols of one
// pre-tokenized word. With a ByteLevel pre-tokenizer the initial symbols are
// the words' bytes, mapped through the GPT-2 byte→character table.
type bpe struct {
	merges       mergeTable
	vocab        map[string]int32
	unk          int32 // -1: none
	fuseUnk      bool
	ignoreMerges bool
	byteLevel    bool
	byteID       [256]int32 // byte-level: id of each byte's character, -1 if absent
	cache        wordCache
}

// noMerge is the mergeTable value of a pair that does not merge. Real values
// pack rank<<32 | new id, so a smaller value is a better (lower) rank.
const noMerge = ^uint64(0)

func newBPE(vocab map[string]int32, merges [][2]string, unk int32, fuseUnk, ignoreMerges bool) (*bpe, error) {
	b := &bpe{vocab: vocab, unk: unk, fuseUnk: fuseUnk, ignoreMerges: ignoreMerges}
	// Resolving a merge is three map lookups; split the list over a few
	// goroutines, since loading time matters for every command-line call.
	ids := make([][3]int32, len(merges))
	workers := max(1, min(runtime.GOMAXPROCS(0), 4, len(merges)/16384))
	errs := make([]error, workers)
	per := (len(merges) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs[w] = resolveMerges(vocab, merges, ids, w*per, min((w+1)*per, len(merges)))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err // the first failing chunk has the lowest index
		}
	}
	b.merges.init(len(merges))
	for i, m := range ids {
		// A repeated pair takes its last rank, as in HF's merge map.
		b.merges.put(m[0], m[1], uint64(i)<<32|uint64(uint32(m[2])))
	}
	return b, nil
}

// resolveMerges fills ids[lo:hi] with the ids of each merge's two tokens and
// of the merged token.
func resolveMerges(vocab map[string]int32, merges [][2]string, ids [][3]int32, lo, hi int) error {
	var buf []byte
	for i := lo; i < hi; i++ {
		m := merges[i]
		x, ok := vocab[m[0]]
		if !ok {
			return fmt.Errorf("model.merges[%d]: token %q is not in model.vocab", i, m[0])
		}
		y, ok := vocab[m[1]]
		if !ok {
			return fmt.Errorf("model.merges[%d]: token %q is not in model.vocab", i, m[1])
		}
		buf = append(append(buf[:0], m[0]...), m[1]...)
		z, ok := vocab[string(buf)]
		if !ok {
			return fmt.Errorf("model.merges[%d]: merged token %q is not in model.vocab", i, buf)
		}
		ids[i] = [3]int32{x, y, z}
	}
	return nil
}

// setByteLevel records whether words arrive as raw bytes for a byte-level
// vocabulary and fills the byte table.
func (b *bpe) setByteLevel(on bool, vocab map[string]int32) {
	b.byteLevel = on
	for i := range b.byteID {
		b.byteID[i] = -1
		if id, ok := vocab[string(byteToRune[i])]; ok {
			b.byteID[i] = id
		}
	}
}

// encodeWord appends the ids of one pre-tokenized word.
func (b *bpe) encodeWord(dst []int32, w string) []int32 {
	if len(w) == 1 && b.byteLevel {
		if id := b.byteID[w[0]]; id >= 0 {
			return append(dst, id)
		}
	}
	cacheable := len(w) <= maxCachedWord
	if cacheable {
		if ids, ok := b.cache.get(w); ok {
			return append(dst, ids...)
		}
	}
	start := len(dst)
	dst = b.tokenizeWord(dst, w)
	if cacheable {
		b.cache.put(w, dst[start:])
	}
	return dst
}

func (b *bpe) tokenizeWord(dst []int32, w string) []int32 {
	if b.ignoreMerges {
		key := w
		if b.byteLevel {
			key = byteLevelString(w)
		}
		if id, ok := b.vocab[key]; ok {
			return append(dst, id)
		}
	}
	var stack [64]int32
	syms := stack[:0]
	lastUnk := false
	addUnknown := func() {
		if b.unk < 0 {
			return // HF drops symbols it cannot map when there is no unk token
		}
		if b.fuseUnk && lastUnk {
			return
		}
		syms = append(syms, b.unk)
		lastUnk = true
	}
	if b.byteLevel {
		for i := 0; i < len(w); i++ {
			if id := b.byteID[w[i]]; id >= 0 {
				syms = append(syms, id)
				lastUnk = false
			} else {
				addUnknown()
			}
		}
	} else {
		for i := 0; i < len(w); {
			_, n := utf8.DecodeRuneInString(w[i:])
			if id, ok := b.vocab[w[i:i+n]]; ok {
				syms = append(syms, id)
				lastUnk = false
			} else {
				addUnknown()
			}
			i += n
		}
	}
	if len(syms) <= maxShortWord {
		syms = b.mergeShort(syms)
	} else {
		syms = b.mergeLong(syms)
	}
	return append(dst, syms...)
}

// maxShortWord is the longest symbol sequence merged by the quadratic scan;
// longer ones use a heap.
const maxShortWord = 64

// mergeShort merges in place: repeatedly the lowest-rank pair, leftmost
// first, as HF's priority queue does.
func (b *bpe) mergeShort(syms []int32) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	var rk [maxShortWord]uint64
	for i := 0; i+1 < n; i++ {
		rk[i] = b.merges.get(syms[i], syms[i+1])
	}
	for {
		best, bi := noMerge, -1
		for i := 0; i+1 < n; i++ {
			if rk[i] < best {
				best, bi = rk[i], i
			}
		}
		if bi < 0 {
			return syms[:n]
		}
		syms[bi] = int32(uint32(best))
		copy(syms[bi+1:n-1], syms[bi+2:n])
		copy(rk[bi:n-2], rk[bi+1:n-1])
		n--
		if bi > 0 {
			rk[bi-1] = b.merges.get(syms[bi-1], syms[bi])
		}
		if bi+1 < n {
			rk[bi] = b.merges.get(syms[bi], syms[bi+1])
		}
	}
}

// mergeLong is mergeShort for long words: a linked list of symbols and a
// heap of candidate pairs ordered by (rank, position).
func (b *bpe) mergeLong(syms []int32) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	next := make([]int32, n)
	prev := make([]int32, n)
	for i := range n {
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	next[n-1] = -1
	h := &pairHeap{}
	push := func(i int32) {
		j := next[i]
		if j < 0 {
			return
		}
		if v := b.merges.get(syms[i], syms[j]); v != noMerge {
			heap.Push(h, pairCand{v: v, pos: i, left: syms[i], right: syms[j]})
		}
	}
	for i := range n - 1 {
		push(int32(i))
	}
	alive := make([]bool, n)
	for i := range alive {
		alive[i] = true
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(pairCand)
		i := c.pos
		j := next[i]
		// A symbol only ever grows, so unchanged ids mean the pair is current.
		if !alive[i] || j < 0 || syms[i] != c.left || syms[j] != c.right {
			continue
		}
		syms[i] = int32(uint32(c.v))
		alive[j] = false
		next[i] = next[j]
		if k := next[j]; k >= 0 {
			prev[k] = i
		}
		if p := prev[i]; p >= 0 {
			push(p)
		}
		push(i)
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type pairCand struct {
	v           uint64 // rank<<32 | new id
	pos         int32
	left, right int32
}

type pairHeap []pairCand

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].v>>32 != h[j].v>>32 {
		return h[i].v < h[j].v
	}
	return h[i].pos < h[j].pos
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairCand)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeTable is an open-addressing hash map from a pair of token ids to the
// packed rank and merged id. It is read-only after loading.
type mergeTable struct {
	slots []mergeSlot
	shift uint
	mask  uint64
}

type mergeSlot struct{ key, val uint64 }

const emptySlot = ^uint64(0)

func (m *mergeTable) init(n int) {
	size, bits := 16, uint(4)
	for size < 2*n {
		size *= 2
		bits++
	}
	m.slots = make([]mergeSlot, size)
	for i := range m.slots {
		m.slots[i].key = emptySlot
	}
	m.shift = 64 - bits
	m.mask = uint64(size - 1)
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *mergeTable) put(a, b int32, v uint64) {
	k := pairKey(a, b)
	for h := (k * 0x9E3779B97F4A7C15) >> m.shift; ; h = (h + 1) & m.mask {
		s := &m.slots[h]
		if s.key == emptySlot || s.key == k {
			s.key, s.val = k, v
			return
		}
	}
}

func (m *mergeTable) get(a, b int32) uint64 {
	k := pairKey(a, b)
	for h := (k * 0x9E3779B97F4A7C15) >> m.shift; ; h = (h + 1) & m.mask {
		s := &m.slots[h]
		if s.key == k {
			return s.val
		}
		if s.key == emptySlot {
			return noMerge
		}
	}
}

// maxCachedWord is the longest word (in bytes) kept in the word cache.
const maxCachedWord = 64

// wordCache maps a word to its ids. It is sharded to keep lock contention
// low under EncodeBatch; a full shard is emptied and refilled.
type wordCache struct {
	seed   maphash.Seed
	once   sync.Once
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 64
	shardCapacity = 4096
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
	_  [32]byte // keep shards on separate cache lines
}

func (c *wordCache) shard(w string) *cacheShard {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return &c.shards[maphash.String(c.seed, w)%cacheShards]
}

func (c *wordCache) get(w string) ([]int32, bool) {
	s := c.shard(w)
	s.mu.RLock()
	ids, ok := s.m[w]
	s.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	s := c.shard(w)
	v := append([]int32(nil), ids...)
	k := string([]byte(w)) // own copy: w may point into a caller's buffer
	s.mu.Lock()
	if s.m == nil || len(s.m) >= shardCapacity {
		s.m = make(map[string][]int32, 256)
	}
	s.m[k] = v
	s.mu.Unlock()
}
