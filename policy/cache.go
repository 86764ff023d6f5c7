package policy

import "fmt"

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
type kvCache struct {
	kvShape
	rows, cols int
	kv         [][]float32
	mask       []int64
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

// gatherKV builds a cache whose row i is src[i]'s real columns,
// packed to the right (left padding), with as few columns as the longest row
// needs. Sources may be the same or different caches; a nil cache stands for
// a row with nothing cached.
func gatherKV(s kvShape, src []slot) *kvCache {
	cols := 0
	for _, sl := range src {
		if sl.c != nil {
			cols = max(cols, sl.c.tokens(sl.row))
		}
	}
	out := &kvCache{kvShape: s, rows: len(src), cols: cols, kv: make([][]float32, 2*s.layers), mask: make([]int64, len(src)*cols)}
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
		// Runs of consecutive real columns [a, b) of the source row.
		var runs [][2]int
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
			runs = append(runs, [2]int{a, c})
			n += c - a
		}
		start := cols - n
		for c := start; c < cols; c++ {
			out.mask[r*cols+c] = 1
		}
		d := s.dim
		for t := range out.kv {
			from, to := sl.c.kv[t], out.kv[t]
			for h := 0; h < s.heads; h++ {
				srcBase := ((sl.row*s.heads + h) * sl.c.cols) * d
				dstBase := ((r*s.heads+h)*cols + start) * d
				for _, run := range runs {
					k := (run[1] - run[0]) * d
					copy(to[dstBase:dstBase+k], from[srcBase+run[0]*d:srcBase+run[1]*d])
					dstBase += k
				}
			}
		}
	}
	return out
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
