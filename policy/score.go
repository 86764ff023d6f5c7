package policy

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Score returns, for each sequence, the log-probs of its tokens after the
// first: out[i][t] = log p(seqs[i][t+1] | seqs[i][..t]), len(seqs[i])−1 of
// them (none for sequences of one token or fewer). Sequences are sorted by
// length and run in buckets of similar lengths, right-padded, so that
// padding stays small; the per-token log-probs come from the scoring graph,
// so the [B,T,V] logits never leave the runtime. For an exported model
// without a scoring graph the inference graph runs instead, in chunks of
// positions with its KV cache, and the log-softmax is taken here.
func (p *Policy) Score(ctx context.Context, seqs [][]int32) ([][]float32, error) {
	out := make([][]float32, len(seqs))
	lengths := make([]int, len(seqs))
	for i, s := range seqs {
		if err := p.checkIDs(s); err != nil {
			return nil, fmt.Errorf("policy: score: sequence %d: %w", i, err)
		}
		lengths[i] = len(s)
		if len(s) <= 1 {
			out[i] = []float32{}
		}
	}
	for _, bucket := range buckets(lengths, p.scoreTokens(), 64) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("policy: score: %w", err)
		}
		group := make([][]int32, len(bucket))
		for i, j := range bucket {
			group[i] = seqs[j]
		}
		var lps [][]float32
		var err error
		switch {
		case p.scoring != nil:
			lps, err = p.scoreGraph(ctx, group)
		case p.batchAppend:
			lps, err = p.scoreInference(ctx, group)
		default:
			// Chunks after the first have a past: one row per run.
			for _, s := range group {
				var lp [][]float32
				if lp, err = p.scoreInference(ctx, [][]int32{s}); err != nil {
					break
				}
				lps = append(lps, lp[0])
			}
		}
		if err != nil {
			return nil, fmt.Errorf("policy: score: %w", err)
		}
		for i, j := range bucket {
			out[j] = lps[i]
		}
	}
	return out, nil
}

// buckets groups the indices of sequences longer than one token by length:
// sorted by length, each bucket holds at most maxRows sequences and, padded
// to its longest, at most maxTokens tokens (a longer sequence alone makes a
// bucket of its own).
func buckets(lengths []int, maxTokens, maxRows int) [][]int {
	var idx []int
	for i, n := range lengths {
		if n > 1 {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return lengths[a] - lengths[b] })
	var out [][]int
	for len(idx) > 0 {
		n := 1
		for n < len(idx) && n < maxRows && (n+1)*lengths[idx[n]] <= maxTokens {
			n++
		}
		out = append(out, idx[:n:n])
		idx = idx[n:]
	}
	return out
}

// rightPad lays sequences out as [len(seqs), T] ids and mask, padded on the
// right, with T the longest length.
func rightPad(seqs [][]int32) (ids, mask []int64, T int) {
	for _, s := range seqs {
		T = max(T, len(s))
	}
	ids = make([]int64, len(seqs)*T)
	mask = make([]int64, len(seqs)*T)
	for i, s := range seqs {
		for t, id := range s {
			ids[i*T+t] = int64(id)
			mask[i*T+t] = 1
		}
	}
	return ids, mask, T
}

// scoreInference scores with the inference graph: chunks of positions run
// with the KV cache, and each chunk's logits are reduced to the log-probs of
// the next tokens before the next chunk runs.
func (p *Policy) scoreInference(ctx context.Context, seqs [][]int32) ([][]float32, error) {
	ids, mask, T := rightPad(seqs)
	n := len(seqs)
	out := make([][]float32, n)
	for i, s := range seqs {
		out[i] = make([]float32, len(s)-1)
	}
	chunk := p.chunkColumns(n)
	c := newKVCache(p.shape, n)
	defer func() { c.release() }()
	v := p.vocab
	for off := 0; off < T; off += chunk {
		w := min(chunk, T-off)
		cids := make([]int64, n*w)
		cmask := make([]int64, n*w)
		for i := range n {
			copy(cids[i*w:(i+1)*w], ids[i*T+off:i*T+off+w])
			copy(cmask[i*w:(i+1)*w], mask[i*T+off:i*T+off+w])
		}
		res, err := p.forward(ctx, c, cids, cmask, w, logitsAll)
		if err != nil {
			return nil, err
		}
		c.release()
		c = res.present
		for i, s := range seqs {
			for j := range w {
				t := off + j // position whose logits predict token t+1
				if t+1 >= len(s) {
					break
				}
				row := res.logits[(i*w+j)*v : (i*w+j+1)*v]
				out[i][t] = float32(float64(row[s[t+1]]) - logSumExp(row))
			}
		}
	}
	return out, nil
}

// checkPositive reports positive log-probs, the sign of a broken graph. NaN
// passes: a caller that scores many contexts in one run (IG's packed trees)
// reports it per context, naming its source.
func checkPositive(lp []float32) error {
	for t, x := range lp {
		if x > 1e-4 {
			return fmt.Errorf("log-prob %v at position %d", x, t)
		}
	}
	return nil
}

// checkLogProbs reports NaN or positive log-probs, the sign of a broken graph.
func checkLogProbs(lp []float32) error {
	for t, x := range lp {
		if math.IsNaN(float64(x)) || x > 1e-4 {
			return fmt.Errorf("log-prob %v at position %d", x, t)
		}
	}
	return nil
}
