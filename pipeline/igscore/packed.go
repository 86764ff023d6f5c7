package igscore

import (
	"context"

	"github.com/igsearch/igsearch/policy"
)

// The ways of sharing prefixes (Options.Sharing).
const (
	// SharingPacked packs radix trees into rows with a tree attention
	// mask (policy.ScorePacked): the default on CUDA.
	SharingPacked = "packed"
	// SharingKV runs the radix tree of all contexts as paths, each once,
	// on the keys and values of the path it hangs off (policy.ScoreTreeKV):
	// the default on the CPU, measured fastest there (tools/benchig).
	SharingKV = "kv"
	// SharingFork forks KV caches and forces each answer token by token
	// (policy.Batch): the earlier way, kept for comparison.
	SharingFork = "fork"
)

// DefaultSharing is the way of sharing prefixes when Options.Sharing is
// empty: SharingKV for a float32 policy on the CPU, SharingPacked on CUDA,
// where the KV paths' graph (ONNX opset 23's fused Attention and
// RotaryEmbedding) has not been measured, and for float16 policies, which
// the KV paths' float32 graph does not take.
func DefaultSharing(pol *policy.Policy) string {
	if pol.Device().CUDA || !pol.CanScoreTreeKV() {
		return SharingPacked
	}
	return SharingKV
}

// scoreKV scores the sequences with policy.ScoreTreeKV.
func (s *Scorer) scoreKV(ctx context.Context, seqs []sequence) ([][]float32, work, error) {
	in := make([]policy.Sequence, len(seqs))
	for i, q := range seqs {
		in[i] = policy.Sequence{IDs: q.ids, Start: q.start}
	}
	out, tw, err := s.pol.ScoreTreeKV(ctx, in, s.opts.Workers)
	if err != nil {
		return nil, work{}, err
	}
	return out, work{tokens: tw.Tokens, attended: tw.Attended}, nil
}

// DefaultPackTokens is the default Options.PackTokens: of the sizes
// tools/benchig tried on the demo's rollouts (384 to 1024), the fastest.
const DefaultPackTokens = 512

// packRunTokens bounds the padded tokens of one run of packed rows: on the
// CPU, one row per run, two runs at once, measured fastest.
const packRunTokens = DefaultPackTokens

// scorePacked scores the sequences as packed trees (policy.PackSequences):
// their contexts, in lexicographic order, make radix trees of about
// Options.PackTokens tokens, one to a row, each sequence's continuation
// hanging below its context, and each row runs once with a tree attention
// mask (policy.ScorePacked). Every shared prefix within a row runs once and
// nothing is forked, gathered or forced token by token; only the prefix a
// row shares with the row before it runs again. Runs of rows are scored
// Options.Workers at a time. It returns the log-probs of every continuation
// and the work done.
func (s *Scorer) scorePacked(ctx context.Context, seqs []sequence) ([][]float32, work, error) {
	in := make([]policy.Sequence, len(seqs))
	for i, q := range seqs {
		in[i] = policy.Sequence{IDs: q.ids, Start: q.start}
	}
	capacity := s.opts.PackTokens
	if capacity <= 0 {
		capacity = DefaultPackTokens
	}
	rows, at := policy.PackSequences(in, capacity)
	var w work
	for _, r := range rows {
		w.tokens += len(r.IDs)
		for _, p := range r.Pos {
			w.attended += int64(p)
		}
	}
	// Consecutive rows run together, padded to the longest of them.
	var runs [][2]int
	for lo := 0; lo < len(rows); {
		hi, longest := lo+1, len(rows[lo].IDs)
		for hi < len(rows) && (hi-lo+1)*max(longest, len(rows[hi].IDs)) <= packRunTokens {
			longest = max(longest, len(rows[hi].IDs))
			hi++
		}
		runs = append(runs, [2]int{lo, hi})
		lo = hi
	}
	lps := make([][]float32, len(rows))
	err := parallel(ctx, len(runs), s.opts.Workers, func(ctx context.Context, k int) error {
		lo, hi := runs[k][0], runs[k][1]
		out, err := s.pol.ScorePacked(ctx, rows[lo:hi])
		if err != nil {
			return err
		}
		copy(lps[lo:hi], out)
		return nil
	})
	if err != nil {
		return nil, work{}, err
	}
	out := make([][]float32, len(seqs))
	for i, q := range seqs {
		if at[i].Row < 0 {
			out[i] = []float32{} // nothing to score, as in scoreFlat
			continue
		}
		n := len(q.ids) - q.start
		out[i] = lps[at[i].Row][at[i].First : at[i].First+n : at[i].First+n]
	}
	return out, w, nil
}
