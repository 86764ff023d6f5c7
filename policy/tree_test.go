package policy

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
)

// treeSequences makes sequences shaped like IG's: a shared prompt, samples
// that extend it step by step, each step scored with its real and several
// counterfactual middles, then an answer prefix and an answer; plus two
// golds on one context, a context that is a prefix of another, a duplicate,
// and a sequence with nothing to score.
func treeSequences(vocab int, seed uint64) []Sequence {
	rng := rand.New(rand.NewPCG(seed, 7))
	toks := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(rng.IntN(vocab))
		}
		return out
	}
	cat := func(parts ...[]int32) []int32 { return slices.Concat(parts...) }
	prompt, ansPrefix := toks(23), toks(3)
	var seqs []Sequence
	for range 3 { // samples
		hist := cat(prompt, toks(1+rng.IntN(5)))
		for range 1 + rng.IntN(3) { // steps
			query := cat(hist, toks(2+rng.IntN(6)))
			for range 4 { // the real and three counterfactual observations
				ctx := cat(query, toks(5+rng.IntN(10)), ansPrefix)
				seqs = append(seqs, Sequence{IDs: cat(ctx, toks(1+rng.IntN(6))), Start: len(ctx)})
			}
			hist = cat(query, toks(8))
		}
	}
	ctx := seqs[0].IDs[:seqs[0].Start]
	seqs = append(seqs,
		Sequence{IDs: cat(ctx, toks(4)), Start: len(ctx)}, // a second gold
		Sequence{IDs: cat(ctx[:17], toks(3)), Start: 17},  // a prefix of a context
		seqs[5], // a duplicate
		Sequence{IDs: slices.Clone(ctx), Start: len(ctx)}, // nothing to score
		Sequence{IDs: cat(toks(30), toks(2)), Start: 30},  // a separate tree
	)
	return seqs
}

// wholeScores is the reference both tree scorings are checked against:
// Score of each whole sequence.
func wholeScores(t *testing.T, p *Policy, seqs []Sequence) [][]float32 {
	t.Helper()
	whole := make([][]int32, len(seqs))
	for i, s := range seqs {
		whole[i] = s.IDs
	}
	want, err := p.Score(context.Background(), whole)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// checkPacked scores seqs packed at several capacities and compares each
// continuation's log-probs with Score of the whole sequence.
func checkPacked(t *testing.T, p *Policy, seqs []Sequence, tol float64) {
	t.Helper()
	want := wholeScores(t, p, seqs)
	for _, capacity := range []int{1, 40, 120, 10000} {
		rows, at := PackSequences(seqs, capacity)
		tokens := 0
		for _, r := range rows {
			tokens += len(r.IDs)
		}
		got, err := p.ScorePacked(context.Background(), rows)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, s := range seqs {
			n := len(s.IDs) - s.Start
			if s.Start == len(s.IDs) {
				if at[i].Row != -1 {
					t.Fatalf("capacity %d: sequence %d has nothing to score but was packed", capacity, i)
				}
				continue
			}
			lp := got[at[i].Row][at[i].First : at[i].First+n]
			for k, x := range lp {
				d := math.Abs(float64(x - want[i][s.Start-1+k]))
				worst = max(worst, d)
				if d > tol {
					t.Fatalf("capacity %d: sequence %d token %d: packed %v, whole %v (|Δ| %.2g)", capacity, i, k, x, want[i][s.Start-1+k], d)
				}
			}
		}
		t.Logf("capacity %d: %d rows, %d tokens, max |Δ| %.2g", capacity, len(rows), tokens, worst)
	}
}

// sharpPolicy is a random tiny Qwen2 whose log-probs depend on the context
// (initializer range 0.3), with the given heads and head size.
func sharpPolicy(t *testing.T, heads, kvHeads, headDim int, attention string) *Policy {
	t.Helper()
	needORT(t)
	cfg := qwen2.TinyConfig()
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HiddenSize = heads, kvHeads, heads*headDim
	cfg.InitializerRange = 0.3
	p, err := FromWeights(cfg, qwen2.Init(cfg, 5), nil, Options{Threads: 2, Attention: attention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestScorePackedEqualsScore checks packed-tree scoring against Score of
// each whole sequence (itself checked against PyTorch in
// TestReferenceForcedDecode), under policies of both attention variants
// (on the CPU the tree graph itself uses standard attention; qwen2's
// TestTreeScoringEqualsScoring checks its contrib variant), on the test
// checkpoint and on random models whose contexts matter, one with a head
// size that GroupQueryAttention's CPU kernel does not take (12).
func TestScorePackedEqualsScore(t *testing.T) {
	for _, tc := range []struct {
		name string
		pol  func(t *testing.T) *Policy
	}{
		{"tiny-qwen2 contrib", func(t *testing.T) *Policy { return openModel(t, "checkpoint") }},
		{"tiny-qwen2 standard", func(t *testing.T) *Policy { return openModel(t, "standard") }},
		{"sharp head 16 contrib", func(t *testing.T) *Policy { return sharpPolicy(t, 4, 2, 16, "contrib") }},
		{"sharp head 16 standard", func(t *testing.T) *Policy { return sharpPolicy(t, 4, 2, 16, "standard") }},
		{"sharp head 12 (preferred: standard)", func(t *testing.T) *Policy { return sharpPolicy(t, 6, 3, 12, "") }},
		{"sharp head 12, no grouping", func(t *testing.T) *Policy { return sharpPolicy(t, 4, 4, 12, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pol(t)
			checkPacked(t, p, treeSequences(p.vocab, 1), 2e-5)
			checkTreeKV(t, p, treeSequences(p.vocab, 1), 2e-5)
		})
	}
}

// TestScorePackedMaskMatters checks that the tree mask keeps branches
// apart: the same sequences scored as one chain (each column seeing every
// column before it) differ from the tree's scores.
func TestScorePackedMaskMatters(t *testing.T) {
	p := sharpPolicy(t, 4, 2, 16, "contrib")
	seqs := treeSequences(p.vocab, 2)
	rows, _ := PackSequences(seqs, 10000)
	tree, err := p.ScorePacked(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	chain := rows[0]
	chain.End = slices.Clone(chain.End)
	for j := range chain.End {
		chain.End[j] = int32(len(chain.IDs))
	}
	flat, err := p.ScorePacked(context.Background(), []PackedRow{chain})
	if err != nil {
		t.Fatal(err)
	}
	diff := 0.0
	for k := range tree[0] {
		diff = max(diff, math.Abs(float64(tree[0][k]-flat[0][k])))
	}
	if diff < 1e-2 {
		t.Fatalf("the tree mask changes no log-prob by more than %.2g: branches see each other", diff)
	}
}

// TestPackSequencesLayout checks the depth-first layout on a hand-made
// tree: contexts [1 2 3] and [1 2 4] with continuations [7 8] and [9], and
// [1 2 3] again with [5].
func TestPackSequencesLayout(t *testing.T) {
	seqs := []Sequence{
		{IDs: []int32{1, 2, 4, 9}, Start: 3},
		{IDs: []int32{1, 2, 3, 7, 8}, Start: 3},
		{IDs: []int32{1, 2, 3, 5}, Start: 3},
	}
	rows, at := PackSequences(seqs, 100)
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	// Sorted contexts: [1 2 3] (twice, stable), then [1 2 4]. Columns:
	// 0:1 1:2 2:3 3:7 (continuation of seq 1) 4:4.
	want := PackedRow{
		IDs:    []int32{1, 2, 3, 7, 4},
		Pos:    []int32{0, 1, 2, 3, 2},
		End:    []int32{5, 5, 4, 4, 5},
		Score:  []int32{2, 3, 2, 4},
		Target: []int32{7, 8, 5, 9},
	}
	for _, c := range []struct {
		name      string
		got, want []int32
	}{{"ids", r.IDs, want.IDs}, {"pos", r.Pos, want.Pos}, {"end", r.End, want.End}, {"score", r.Score, want.Score}, {"target", r.Target, want.Target}} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if want := []PackedAt{{0, 3}, {0, 0}, {0, 2}}; !slices.Equal(at, want) {
		t.Errorf("at = %v, want %v", at, want)
	}
	if err := r.Check(10); err != nil {
		t.Error(err)
	}
}

// checkTreeKV scores seqs with ScoreTreeKV and compares each
// continuation's log-probs with Score of the whole sequence.
func checkTreeKV(t *testing.T, p *Policy, seqs []Sequence, tol float64) {
	t.Helper()
	want := wholeScores(t, p, seqs)
	got, w, err := p.ScoreTreeKV(context.Background(), seqs, 2)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, s := range seqs {
		if s.Start == len(s.IDs) {
			if len(got[i]) != 0 {
				t.Fatalf("sequence %d has nothing to score, got %v", i, got[i])
			}
			continue
		}
		if len(got[i]) != len(s.IDs)-s.Start {
			t.Fatalf("sequence %d: %d log-probs, want %d", i, len(got[i]), len(s.IDs)-s.Start)
		}
		for k, x := range got[i] {
			d := math.Abs(float64(x - want[i][s.Start-1+k]))
			worst = max(worst, d)
			if d > tol {
				t.Fatalf("KV tree: sequence %d token %d: %v, whole %v (|Δ| %.2g)", i, k, x, want[i][s.Start-1+k], d)
			}
		}
	}
	t.Logf("KV tree: %d tokens, %d attended, max |Δ| %.2g", w.Tokens, w.Attended, worst)
}

// TestKVBatchesLayout checks how ScoreTreeKV lays out treeSequences' tree:
// every row runs once, in a line no wider than its batch, on a past as long
// as any of its rows sees; and the layout has what the scoring test must
// cover: rows sharing a line, and rows that see less of the past than
// their batch holds (the mask hides the rest).
func TestKVBatchesLayout(t *testing.T) {
	seqs := treeSequences(1000, 1)
	var order []int
	for i, s := range seqs {
		if s.Start > 0 && s.Start < len(s.IDs) {
			order = append(order, i)
		}
	}
	_, top := kvPaths(seqs, order)
	seen := map[*kvRow]bool{}
	shared, masked, scored := false, false, 0
	ready := top.batches()
	for len(ready) > 0 {
		b := ready[0]
		ready = ready[1:]
		for _, line := range b.lines {
			used := 0
			for _, row := range line {
				if seen[row] {
					t.Fatalf("a row runs twice")
				}
				seen[row] = true
				used += len(row.ids)
				scored += len(row.score)
				if row.pastEnd > b.pastLen {
					t.Fatalf("a row sees %d past columns of a batch's %d", row.pastEnd, b.pastLen)
				}
				masked = masked || row.pastEnd < b.pastLen
				if h := row.hangers(seqs); len(h.rows) > 0 {
					ready = append(ready, h.batches()...)
				}
			}
			if used > b.width {
				t.Fatalf("a line of %d tokens in a batch %d wide", used, b.width)
			}
			shared = shared || len(line) > 1
		}
	}
	want := 0
	for _, i := range order {
		want += len(seqs[i].IDs) - seqs[i].Start
	}
	if scored != want {
		t.Errorf("%d scored tokens, want %d", scored, want)
	}
	if !shared || !masked {
		t.Errorf("rows sharing a line: %v; rows seeing less of the past than their batch: %v; want both", shared, masked)
	}
}

// TestScoreTreeKVErrors checks that ScoreTreeKV reports a token outside the
// vocabulary by sequence, and stops on a cancelled context.
func TestScoreTreeKVErrors(t *testing.T) {
	p := openModel(t, "standard")
	seqs := treeSequences(p.vocab, 1)
	bad := slices.Clone(seqs)
	bad[2] = Sequence{IDs: []int32{1, 2, int32(p.vocab), 4}, Start: 2}
	if _, _, err := p.ScoreTreeKV(context.Background(), bad, 2); err == nil || !strings.Contains(err.Error(), "sequence 2") {
		t.Errorf("a token outside the vocabulary: %v, want an error naming sequence 2", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.ScoreTreeKV(ctx, seqs, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context: %v, want context.Canceled", err)
	}
	// A policy opened from an exported graph has no weights to build the
	// tree graph from: opening it early gives ScoreTreeKV's error.
	exported := openModel(t, "onnx")
	if err := exported.OpenTreeKV(); !errors.Is(err, ErrNoTreeScoring) {
		t.Errorf("OpenTreeKV on a policy from model.onnx: %v, want ErrNoTreeScoring", err)
	}
	if _, _, err := exported.ScoreTreeKV(context.Background(), seqs, 2); !errors.Is(err, ErrNoTreeScoring) {
		t.Errorf("ScoreTreeKV on a policy from model.onnx: %v, want ErrNoTreeScoring", err)
	}
}
