package policy

import (
	"context"
	"fmt"
	"sync"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// kvOps are the small graphs that keep a resident KV cache where the
// inference session put it (device memory on CUDA, ORT-owned memory on the
// CPU): gathering rows and columns of caches into a new one (compaction,
// forks), appending the new columns of the attention mask, and reading the
// log-probs of forced tokens. None of them moves a cache across the
// boundary; their sessions are built on first use and kept.
type kvOps struct {
	so    ort.Options
	shape kvShape
	dtype onnx.DType // the KV cache's

	mu      sync.Mutex
	gathers map[int]*ort.Session // by number of source caches
	concat  *ort.Session
	pick    *ort.Session
}

func newKVOps(so ort.Options, s kvShape, dt onnx.DType) *kvOps {
	so.Weights = nil
	so.DisablePrepacking = false
	return &kvOps{so: so, shape: s, dtype: dt, gathers: map[int]*ort.Session{}}
}

func (k *kvOps) close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.gathers {
		s.Close()
	}
	k.concat.Close()
	k.pick.Close()
	k.gathers, k.concat, k.pick = nil, nil, nil
}

// session returns the session in *slot, building it with build first.
func (k *kvOps) session(slot **ort.Session, build func() *onnx.Graph) (*ort.Session, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if *slot == nil {
		s, err := ort.NewSessionFromGraph(build(), k.so)
		if err != nil {
			return nil, fmt.Errorf("policy: kv graph: %w", err)
		}
		*slot = s
	}
	return *slot, nil
}

// gatherName and outName name the gather graph's I/O: source j's tensor t
// (2i: layer i's keys, 2i+1: its values), and output tensor t.
func gatherName(j, t int) string { return fmt.Sprintf("src%d.%d", j, t) }
func outName(t int) string       { return fmt.Sprintf("out.%d", t) }

// gatherGraph gathers columns of k caches into one: each source
// [n_j, heads, P_j, dim] is laid out as rows of (row, column) pairs
// [n_j·P_j, heads·dim], the sources are concatenated, and `index` [m·cols]
// picks the output's columns, reshaped by `shape` = [m, cols, heads, dim]
// and laid back out as [m, heads, cols, dim].
func gatherGraph(s kvShape, dt onnx.DType, k int) *onnx.Graph {
	g := onnx.NewGraph(fmt.Sprintf("kv-gather-%d", k))
	index := g.Input("index", onnx.Int64, onnx.Sym("columns"))
	shape := g.Input("shape", onnx.Int64, onnx.D(4))
	hd := int64(s.heads * s.dim)
	for t := range 2 * s.layers {
		parts := make([]*onnx.Value, k)
		for j := range k {
			x := g.Input(gatherName(j, t), dt, onnx.Sym(fmt.Sprintf("rows%d", j)), onnx.D(int64(s.heads)), onnx.Sym(fmt.Sprintf("cols%d", j)), onnx.D(int64(s.dim)))
			parts[j] = g.Reshape(g.Transpose(x, 0, 2, 1, 3), -1, hd)
		}
		all := parts[0]
		if k > 1 {
			all = g.Concat(0, parts...)
		}
		cols := g.Gather(all, index, 0)
		out := g.ReshapeLike(cols, shape, onnx.Shape{onnx.Sym("m"), onnx.Sym("c"), onnx.D(int64(s.heads)), onnx.D(int64(s.dim))})
		g.Output(outName(t), g.Transpose(out, 0, 2, 1, 3))
	}
	return g
}

// concatGraph appends the new mask columns to the past ones.
func concatGraph() *onnx.Graph {
	g := onnx.NewGraph("kv-mask")
	past := g.Input("past", onnx.Int64, onnx.Sym("rows"), onnx.Sym("past"))
	add := g.Input("new", onnx.Int64, onnx.Sym("rows"), onnx.Sym("new"))
	g.Output("mask", g.Concat(1, past, add))
	return g
}

// pickGraph reads, per row, the log-prob of a given token from the sampling
// head's last-position log-probs [n, 1, V].
func pickGraph() *onnx.Graph {
	g := onnx.NewGraph("kv-pick")
	lp := g.Input(outLogprobs, onnx.Float, onnx.Sym("rows"), onnx.D(1), onnx.Sym("vocab"))
	tok := g.Input("token", onnx.Int64, onnx.Sym("rows"))
	rows := g.Reshape(lp, 0, -1)
	g.Output("token_logprob", g.Reshape(g.GatherElements(rows, g.Unsqueeze(tok, 1), 1), -1))
	return g
}

// gather runs the gather graph over the resident tensors of srcs (each
// [n_j, heads, P_j, dim] per tensor t, all non-empty) with the flat column
// index and the output geometry m × cols.
func (k *kvOps) gather(ctx context.Context, srcs [][]*ort.Tensor, index []int64, m, cols int) ([]*ort.Tensor, error) {
	k.mu.Lock()
	slot := k.gathers[len(srcs)]
	k.mu.Unlock()
	if slot == nil {
		s, err := ort.NewSessionFromGraph(gatherGraph(k.shape, k.dtype, len(srcs)), k.so)
		if err != nil {
			return nil, fmt.Errorf("policy: kv gather graph: %w", err)
		}
		k.mu.Lock()
		if k.gathers[len(srcs)] == nil {
			k.gathers[len(srcs)] = s
		} else {
			s.Close()
		}
		slot = k.gathers[len(srcs)]
		k.mu.Unlock()
	}
	b, err := slot.NewBinding()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	idx, err := ort.NewTensor([]int64{int64(len(index))}, index)
	if err != nil {
		return nil, err
	}
	defer idx.Destroy()
	shape, err := ort.NewTensor([]int64{4}, []int64{int64(m), int64(cols), int64(k.shape.heads), int64(k.shape.dim)})
	if err != nil {
		return nil, err
	}
	defer shape.Destroy()
	if err := b.Input("index", idx); err != nil {
		return nil, err
	}
	if err := b.Input("shape", shape); err != nil {
		return nil, err
	}
	for j, src := range srcs {
		for t, x := range src {
			if err := b.Input(gatherName(j, t), x); err != nil {
				return nil, err
			}
		}
	}
	for t := range 2 * k.shape.layers {
		if err := b.OutputInPlace(outName(t)); err != nil {
			return nil, err
		}
	}
	out, err := b.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: kv gather: %w", err)
	}
	res := make([]*ort.Tensor, 2*k.shape.layers)
	for t := range res {
		res[t] = out[outName(t)]
	}
	return res, nil
}

// appendMask returns past's mask columns followed by the new ones (Go
// memory, [n, w]), as a resident tensor.
func (k *kvOps) appendMask(ctx context.Context, past *ort.Tensor, add []int64, n, w int) (*ort.Tensor, error) {
	s, err := k.session(&k.concat, concatGraph)
	if err != nil {
		return nil, err
	}
	x, err := ort.NewTensor([]int64{int64(n), int64(w)}, add)
	if err != nil {
		return nil, err
	}
	defer x.Destroy()
	b, err := s.NewBinding()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := b.Input("past", past); err != nil {
		return nil, err
	}
	if err := b.Input("new", x); err != nil {
		return nil, err
	}
	if err := b.OutputInPlace("mask"); err != nil {
		return nil, err
	}
	out, err := b.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: attention mask: %w", err)
	}
	return out["mask"], nil
}

// pickLogprobs returns logprobs[i, 0, tokens[i]] for each row.
func (k *kvOps) pickLogprobs(ctx context.Context, logprobs *ort.Tensor, tokens []int64) ([]float32, error) {
	s, err := k.session(&k.pick, pickGraph)
	if err != nil {
		return nil, err
	}
	tok, err := ort.NewTensor([]int64{int64(len(tokens))}, tokens)
	if err != nil {
		return nil, err
	}
	defer tok.Destroy()
	lps := make([]float32, len(tokens))
	if err := runBound(ctx, s, map[string]*ort.Tensor{outLogprobs: logprobs, "token": tok}, map[string]func() (*ort.Tensor, error){
		"token_logprob": func() (*ort.Tensor, error) { return ort.NewTensor([]int64{int64(len(tokens))}, lps) },
	}); err != nil {
		return nil, fmt.Errorf("policy: forced-token log-probs: %w", err)
	}
	return lps, nil
}
