package qwen2

import (
	"fmt"
	"math"
	"testing"
)

// TestTreeScoringEqualsScoring checks the tree-scoring graph, with both
// attention variants, against the scoring graph run on each root-to-leaf
// sequence alone. Row 0 packs a prefix P (6 tokens) with two branches A (4
// tokens) and B (3); row 1 is the chain P·C, shorter, so padded. Scored:
// the token after P's last in each branch, and the last token of each
// branch after the one before it.
func TestTreeScoringEqualsScoring(t *testing.T) {
	for _, c := range []struct {
		heads, kv, dim int
		attn           []Attention
	}{
		{4, 2, 16, []Attention{StandardAttention, ContribAttention, FusedAttention}},
		{6, 3, 12, []Attention{StandardAttention, FusedAttention}}, // GroupQueryAttention's CPU kernel needs dim % 8 == 0
	} {
		cfg := TinyConfig()
		cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HiddenSize = c.heads, c.kv, c.heads*c.dim
		cfg.InitializerRange = 0.3 // log-probs that depend on the context
		w := Init(cfg, 3)
		P, A, B, C := []int64{11, 502, 7, 93, 840, 5}, []int64{61, 62, 63, 64}, []int64{700, 1, 2}, []int64{9, 9}
		seqs := [][]int64{cat(P, A), cat(P, B), cat(P, C)}
		sg, err := BuildScoring(cfg, w, Options{Attention: StandardAttention})
		if err != nil {
			t.Fatal(err)
		}
		ss := newTestSession(t, sg, 1)
		want := make([][]float32, len(seqs))
		for i, s := range seqs {
			mask := make([]int64, len(s))
			for j := range mask {
				mask[j] = 1
			}
			out, err := ss.run(map[string]tensor{
				InputIDs: {shape: []int64{1, int64(len(s))}, i: s}, AttentionMask: {shape: []int64{1, int64(len(s))}, i: mask}})
			if err != nil {
				t.Fatal(err)
			}
			want[i] = out[TokenLogprobs].f
		}
		// Row 0: P (cols 0–5), A (6–9), B (10–12). Row 1: P (0–5), C (6–7), padding (8–12).
		const T = 13
		ids := cat(P, A, B, P, C, make([]int64, 5))
		pos := cat(seq(0, 10), seq(6, 9), seq(0, 8), make([]int64, 5))
		end := cat([]int64{13, 13, 13, 13, 13, 13, 10, 10, 10, 10, 13, 13, 13},
			[]int64{8, 8, 8, 8, 8, 8, 8, 8, 9, 10, 11, 12, 13})
		// (row, column predicting, target): P→A[0], A[2]→A[3], P→B[0], B[1]→B[2], P→C[0], C[0]→C[1].
		scored := [][3]int64{{0, 5, 61}, {0, 8, 64}, {0, 5, 700}, {0, 11, 2}, {1, 5, 9}, {1, 6, 9}}
		ref := []float32{want[0][5], want[0][8], want[1][5], want[1][7], want[2][5], want[2][6]}
		index, target := make([]int64, len(scored)), make([]int64, len(scored))
		for k, s := range scored {
			index[k], target[k] = s[0]*T+s[1], s[2]
		}
		for _, attn := range c.attn {
			t.Run(fmt.Sprintf("dim%d/%s", c.dim, attn), func(t *testing.T) {
				g, err := BuildTreeScoring(cfg, w, Options{Attention: attn})
				if err != nil {
					t.Fatal(err)
				}
				out, err := newTestSession(t, g, 1).run(map[string]tensor{
					InputIDs: {shape: []int64{2, T}, i: ids}, PositionIDs: {shape: []int64{2, T}, i: pos},
					SubtreeEnd: {shape: []int64{2, T}, i: end},
					ScoreIndex: {shape: []int64{int64(len(index))}, i: index}, ScoreTarget: {shape: []int64{int64(len(index))}, i: target}})
				if err != nil {
					t.Fatal(err)
				}
				got := out[TargetLogprobs].f
				for k := range ref {
					if d := math.Abs(float64(got[k] - ref[k])); d > 1e-5 || math.IsNaN(float64(got[k])) {
						t.Errorf("scored %v: tree %v, whole sequence %v (|Δ| %.2g)", scored[k], got[k], ref[k], d)
					}
				}
			})
		}
	}
}

func cat(parts ...[]int64) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// seq is lo, lo+1, …, hi−1.
func seq(lo, hi int64) []int64 {
	var out []int64
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// TestTreeScoringPastEqualsScoring runs P alone through the graph with a
// past (an empty one), then A, B and C as three rows on P's keys and values,
// shared, padded with two columns of garbage: A and B see all of P, C only
// P's first four tokens (the mask says so through the bias the test builds
// from each token's subtree end and past end). It checks the scored log-probs against the
// scoring graph on P·A, P·B and P[:4]·C.
func TestTreeScoringPastEqualsScoring(t *testing.T) {
	cfg := TinyConfig()
	cfg.InitializerRange = 0.3
	w := Init(cfg, 3)
	P, A, B, C := []int64{11, 502, 7, 93, 840, 5}, []int64{61, 62, 63, 64}, []int64{700, 1, 2}, []int64{9, 9}
	sg, err := BuildScoring(cfg, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := newTestSession(t, sg, 1)
	var want [][]float32
	for _, s := range [][]int64{cat(P, A), cat(P, B), cat(P[:4], C)} {
		out, err := ss.run(map[string]tensor{InputIDs: {shape: []int64{1, int64(len(s))}, i: s}, AttentionMask: {shape: []int64{1, int64(len(s))}, i: onesN(len(s))}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out[TokenLogprobs].f)
	}
	g, err := BuildTreeScoringPast(cfg, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSession(t, g, 1)
	width := int64(cfg.NumKeyValueHeads * cfg.HeadDim())
	// The bias of rows of chains: token t of row b sees the past columns
	// before pastEnd[b·T+t], and the row's tokens before it up to
	// end[b·T+t], as subtree_end would say.
	in := func(n, T, past int64, ids, pos, end, pastEnd []int64, kvs map[string][]float32, index, target []int64) map[string]tensor {
		bias := make([]float32, n*T*(past+T))
		for b := range n {
			for q := range T {
				for c := range past + T {
					if (c < past && c < pastEnd[b*T+q]) || (c >= past && c-past <= q && q < end[b*T+c-past]) {
						continue
					}
					bias[(b*T+q)*(past+T)+c] = -math.MaxFloat32
				}
			}
		}
		m := map[string]tensor{
			InputIDs:      {shape: []int64{n, T}, i: ids},
			PositionIDs:   {shape: []int64{n, T}, i: pos},
			AttentionBias: {shape: []int64{n, 1, T, past + T}, f: bias},
			ScoreIndex:    {shape: []int64{int64(len(index))}, i: index},
			ScoreTarget:   {shape: []int64{int64(len(index))}, i: target},
		}
		for l := range cfg.NumHiddenLayers {
			for _, name := range []string{PastKey(l), PastValue(l)} {
				m[name] = tensor{shape: []int64{1, past, width}, f: kvs[name]}
			}
		}
		return m
	}
	// P alone: a chain of 6, scoring P's last → A[0].
	out, err := s.run(in(1, 6, 0, P, seq(0, 6), []int64{6, 6, 6, 6, 6, 6}, make([]int64, 6), map[string][]float32{}, []int64{5}, []int64{61}))
	if err != nil {
		t.Fatal(err)
	}
	if got := out[TargetLogprobs].f[0]; math.Abs(float64(got-want[0][5])) > 1e-5 {
		t.Errorf("P → A[0]: %v, want %v", got, want[0][5])
	}
	// Rows A, B, C (4 columns, padded) on P's 6 columns (+2 padding).
	const T, past = 4, 8
	pastKV := map[string][]float32{}
	for l := range cfg.NumHiddenLayers {
		for j, name := range []string{PastKey(l), PastValue(l)} {
			pk := out[[]string{PresentKey(l), PresentValue(l)}[j]].f // [1,6,width]
			buf := make([]float32, past*width)
			copy(buf, pk)
			for i := 6 * width; i < past*width; i++ {
				buf[i] = 1e3 // garbage that the mask must hide
			}
			pastKV[name] = buf
		}
	}
	ids := cat(A, B, []int64{0}, C, []int64{0, 0})
	pos := cat(seq(6, 10), seq(6, 9), []int64{0}, seq(4, 6), []int64{0, 0})
	end := cat([]int64{4, 4, 4, 4}, []int64{3, 3, 3, 4}, []int64{2, 2, 3, 4})
	pastEnd := cat([]int64{6, 6, 6, 6}, []int64{6, 6, 6, 0}, []int64{4, 4, 0, 0})
	// A[0]→A[1], A[2]→A[3], B[0]→B[1], B[1]→B[2], C[0]→C[1].
	index, target := []int64{0, 2, 4, 5, 8}, []int64{62, 64, 1, 2, 9}
	ref := []float32{want[0][6], want[0][8], want[1][6], want[1][7], want[2][4]}
	out, err = s.run(in(3, T, past, ids, pos, end, pastEnd, pastKV, index, target))
	if err != nil {
		t.Fatal(err)
	}
	for k, x := range out[TargetLogprobs].f {
		if d := math.Abs(float64(x - ref[k])); d > 1e-5 || math.IsNaN(float64(x)) {
			t.Errorf("scored %d: %v on the past, %v whole (|Δ| %.2g)", k, x, ref[k], d)
		}
	}
	if sh := out[PresentKey(0)].shape; sh[0] != 3 || sh[1] != T {
		t.Errorf("present keys %v: want the %d new columns of 3 rows", sh, T)
	}
}

func onesN(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = 1
	}
	return out
}
