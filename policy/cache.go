package policy

import (
	"context"
	"fmt"

	"github.com/igsearch/igsearch/onnx/ort"
)

// kvShape is the geometry of a model's KV cache.
type kvShape struct {
	layers, heads, dim int
}

// kvCache is the key/value cache of a group of rows in host memory, in the
// layout of the inference graph's past_key_values inputs: for each layer a
// key and a value tensor [rows, heads, cols, dim], at kv[2i] and kv[2i+1].
// mask[r*cols+c] is 1 where column c of row r holds a token and 0 where it
// is padding. Columns carry no position of their own: the graph derives
// positions from the mask (cumsum − 1), and keys are stored already rotated,
// so padding columns can be removed without changing anything.
//
// A resident cache (Policy.resident) keeps its keys and values in dev
// instead, ORT-owned tensors where the inference session produced them, with
// its mask both here (for planning) and in devMask (what the graph reads).
type kvCache struct {
	kvShape
	rows, cols int
	kv         [][]float32
	mask       []int64
	dev        []*ort.Tensor
	devMask    *ort.Tensor
	refs       int // rows of a Batch whose cache this is
}

// newKVCache returns an empty cache (zero columns) for n rows.
func newKVCache(s kvShape, n int) *kvCache {
	c := &kvCache{kvShape: s, rows: n, kv: make([][]float32, 2*s.layers)}
	for i := range c.kv {
		c.kv[i] = []float32{}
	}
	c.mask = []int64{}
	return c
}

// release hands the cache's buffers back for reuse. The cache must not be
// read afterwards.
func (c *kvCache) release() {
	if c == nil {
		return
	}
	for _, b := range c.kv {
		putKV(b)
	}
	c.kv = nil
	for _, t := range c.dev {
		t.Destroy()
	}
	c.dev = nil
	c.devMask.Destroy()
	c.devMask = nil
}

// tokens returns the number of real (unmasked) columns of row r.
func (c *kvCache) tokens(r int) int {
	n := 0
	for _, m := range c.mask[r*c.cols : (r+1)*c.cols] {
		if m != 0 {
			n++
		}
	}
	return n
}

// padding is the fraction of the cache's cells that are padding.
func (c *kvCache) padding() float64 {
	if c.rows*c.cols == 0 {
		return 0
	}
	real := 0
	for _, m := range c.mask {
		if m != 0 {
			real++
		}
	}
	return 1 - float64(real)/float64(c.rows*c.cols)
}

// slot names one row of one cache.
type slot struct {
	c   *kvCache
	row int
}

// gatherPlan lays out a cache whose row i is src[i]'s real columns,
// packed to the right (left padding), with as few columns as the longest
// row needs: the mask, and for each row the runs [a, b) of real columns of
// its source row, in order. A nil cache stands for a row with nothing
// cached.
func gatherPlan(src []slot) (cols int, mask []int64, runs [][][2]int) {
	for _, sl := range src {
		if sl.c != nil {
			cols = max(cols, sl.c.tokens(sl.row))
		}
	}
	mask = make([]int64, len(src)*cols)
	runs = make([][][2]int, len(src))
	for r, sl := range src {
		if sl.c == nil {
			continue
		}
		m := sl.c.mask[sl.row*sl.c.cols : (sl.row+1)*sl.c.cols]
		n := 0
		for c := 0; c < len(m); {
			if m[c] == 0 {
				c++
				continue
			}
			a := c
			for c < len(m) && m[c] != 0 {
				c++
			}
			runs[r] = append(runs[r], [2]int{a, c})
			n += c - a
		}
		for c := cols - n; c < cols; c++ {
			mask[r*cols+c] = 1
		}
	}
	return cols, mask, runs
}

// gatherKV builds the host cache that gatherPlan lays out, copying the
// columns. Sources may be the same or different caches.
func gatherKV(s kvShape, src []slot) *kvCache {
	cols, mask, runs := gatherPlan(src)
	out := &kvCache{kvShape: s, rows: len(src), cols: cols, kv: make([][]float32, 2*s.layers), mask: mask}
	for i := range out.kv {
		out.kv[i] = getKV(len(src) * s.heads * cols * s.dim)
	}
	for r, sl := range src {
		if sl.c == nil {
			continue
		}
		if sl.c.kvShape != s {
			panic(fmt.Sprintf("policy: gathering a %+v cache into %+v", sl.c.kvShape, s))
		}
		n := 0
		for _, run := range runs[r] {
			n += run[1] - run[0]
		}
		start := cols - n
		d := s.dim
		for t := range out.kv {
			from, to := sl.c.kv[t], out.kv[t]
			for h := 0; h < s.heads; h++ {
				srcBase := ((sl.row*s.heads + h) * sl.c.cols) * d
				dstBase := ((r*s.heads+h)*cols + start) * d
				for _, run := range runs[r] {
					k := (run[1] - run[0]) * d
					copy(to[dstBase:dstBase+k], from[srcBase+run[0]*d:srcBase+run[1]*d])
					dstBase += k
				}
			}
		}
	}
	return out
}

// gatherResident is gatherKV for resident caches: the columns are gathered
// on the device (kvOps.gather) and only the plan (a column index and the
// new mask) crosses the boundary.
func (p *Policy) gatherResident(ctx context.Context, src []slot) (*kvCache, error) {
	cols, mask, runs := gatherPlan(src)
	if cols == 0 {
		return p.newCache(len(src))
	}
	// Each source cache's columns are rows base+r·P+c of the concatenated
	// sources.
	var caches [][]*ort.Tensor
	base := map[*kvCache]int{}
	total := 0
	for _, sl := range src {
		if sl.c == nil || sl.c.cols == 0 {
			continue
		}
		if _, ok := base[sl.c]; !ok {
			base[sl.c] = total
			total += sl.c.rows * sl.c.cols
			caches = append(caches, sl.c.dev)
		}
	}
	index := make([]int64, len(src)*cols)
	first := int64(-1)
	for r, sl := range src {
		c := cols
		for i := len(runs[r]) - 1; i >= 0; i-- {
			run := runs[r][i]
			for col := run[1] - 1; col >= run[0]; col-- {
				c--
				index[r*cols+c] = int64(base[sl.c] + sl.row*sl.c.cols + col)
				if first < 0 {
					first = index[r*cols+c]
				}
			}
		}
	}
	// Padding columns repeat a real one: masked, but finite.
	for i := range index {
		if mask[i] == 0 {
			index[i] = first
		}
	}
	ctx = ort.WithPhase(ctx, "kv")
	dev, err := p.ops.gather(ctx, caches, index, len(src), cols)
	if err != nil {
		return nil, err
	}
	out := &kvCache{kvShape: p.shape, rows: len(src), cols: cols, mask: mask, dev: dev}
	if out.devMask, err = p.uploadMask(ctx, mask, len(src), cols); err != nil {
		out.release()
		return nil, err
	}
	return out, nil
}

// isIdentity reports whether src is exactly the rows of one cache in order,
// so that gathering would only copy.
func isIdentity(src []slot) bool {
	if len(src) == 0 || src[0].c == nil || src[0].c.rows != len(src) {
		return false
	}
	for i, sl := range src {
		if sl.c != src[0].c || sl.row != i {
			return false
		}
	}
	return true
}
