package policy

import (
	"math"
	"slices"
	"testing"
)

// filledCache makes a cache whose cell (tensor t, row r, head h, column c,
// element e) holds t*1e6 + r*1e4 + h*1e3 + c*10 + e, so that a copy's origin
// can be read off its value.
func filledCache(s kvShape, rows, cols int, mask []int64) *kvCache {
	c := &kvCache{kvShape: s, rows: rows, cols: cols, mask: mask, kv: make([][]float32, 2*s.layers)}
	for t := range c.kv {
		c.kv[t] = make([]float32, rows*s.heads*cols*s.dim)
		for r := range rows {
			for h := range s.heads {
				for col := range cols {
					for e := range s.dim {
						c.kv[t][((r*s.heads+h)*cols+col)*s.dim+e] = float32(t*1e6 + r*1e4 + h*1e3 + col*10 + e)
					}
				}
			}
		}
	}
	return c
}

func TestGatherKV(t *testing.T) {
	s := kvShape{layers: 2, heads: 2, dim: 3}
	// Row 0: columns 1, 2, 4 real (a hole at 3); row 1: columns 3, 4;
	// row 2: nothing.
	a := filledCache(s, 3, 5, []int64{
		0, 1, 1, 0, 1,
		0, 0, 0, 1, 1,
		0, 0, 0, 0, 0,
	})
	b := filledCache(s, 1, 2, []int64{1, 1})
	got := gatherKV(s, []slot{{a, 1}, {nil, 0}, {a, 0}, {b, 0}, {a, 2}})
	if got.rows != 5 || got.cols != 3 {
		t.Fatalf("gathered %d×%d, want 5×3", got.rows, got.cols)
	}
	wantMask := []int64{
		0, 1, 1,
		0, 0, 0,
		1, 1, 1,
		0, 1, 1,
		0, 0, 0,
	}
	if !slices.Equal(got.mask, wantMask) {
		t.Errorf("mask %v, want %v", got.mask, wantMask)
	}
	// Where each real destination column comes from: (source cache, row,
	// column).
	type src struct {
		c        *kvCache
		row, col int
	}
	from := map[[2]int]src{
		{0, 1}: {a, 1, 3}, {0, 2}: {a, 1, 4},
		{2, 0}: {a, 0, 1}, {2, 1}: {a, 0, 2}, {2, 2}: {a, 0, 4},
		{3, 1}: {b, 0, 0}, {3, 2}: {b, 0, 1},
	}
	for tt := range got.kv {
		for r := range 5 {
			for h := range s.heads {
				for col := range 3 {
					for e := range s.dim {
						v := got.kv[tt][((r*s.heads+h)*3+col)*s.dim+e]
						want := float32(0)
						if f, ok := from[[2]int{r, col}]; ok {
							want = f.c.kv[tt][((f.row*s.heads+h)*f.c.cols+f.col)*s.dim+e]
						}
						if v != want {
							t.Fatalf("tensor %d row %d head %d col %d elem %d = %v, want %v", tt, r, h, col, e, v, want)
						}
					}
				}
			}
		}
	}
	if p := a.padding(); math.Abs(p-10.0/15) > 1e-12 {
		t.Errorf("padding %v, want %v", p, 1-5.0/15)
	}
	if !isIdentity([]slot{{a, 0}, {a, 1}, {a, 2}}) || isIdentity([]slot{{a, 0}, {a, 2}, {a, 1}}) || isIdentity([]slot{{a, 0}, {a, 1}}) {
		t.Error("isIdentity wrong")
	}
}
