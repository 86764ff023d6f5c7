package policy

import (
	"context"
	"fmt"
	"slices"
)

// Fork adds n rows that continue row r: each starts with r's tokens, with a
// copy of r's cached columns, and r's pending tokens pending, so that
// several continuations of one prefix run the prefix once. It returns the
// new rows' numbers. A forked row's sampling generator is seeded with its
// row number.
func (b *Batch) Fork(r, n int) ([]int, error) {
	if err := b.check(r); err != nil {
		return nil, fmt.Errorf("policy: fork: %w", err)
	}
	if n <= 0 {
		return nil, nil
	}
	src := b.rows[r]
	out := make([]int, n)
	for i := range out {
		out[i] = len(b.rows)
		b.rows = append(b.rows, &batchRow{seq: slices.Clone(src.seq), cached: src.cached, rng: newRowRNG(uint64(out[i]))})
	}
	if src.cache != nil {
		slots := make([]slot, n)
		for i := range slots {
			slots[i] = slot{src.cache, src.slot}
		}
		c, err := b.p.gather(context.Background(), slots)
		if err != nil {
			return nil, fmt.Errorf("policy: fork: %w", err)
		}
		b.adopt(out, c)
	}
	return out, nil
}

// Force appends tokens[i] to rows[i] one token at a time, as if each had
// been sampled, and returns their log-probs: out[i][k] = log p(tokens[i][k]
// | row i before it), from log_softmax of the raw logits. Pending tokens are
// prefilled first, so every row with tokens to force needs one. The last
// forced token of each row stays pending, as after Generate. It scores a
// known continuation on a cached prefix (teacher forcing).
func (b *Batch) Force(ctx context.Context, rows []int, tokens [][]int32) ([][]float32, error) {
	if len(rows) != len(tokens) {
		return nil, fmt.Errorf("policy: force: %d rows, %d token lists", len(rows), len(tokens))
	}
	seen := map[int]bool{}
	out := make([][]float32, len(rows))
	var active []int // indices into rows
	for i, r := range rows {
		if err := b.check(r); err != nil {
			return nil, fmt.Errorf("policy: force: %w", err)
		}
		if seen[r] {
			return nil, fmt.Errorf("policy: force: row %d given twice", r)
		}
		seen[r] = true
		if err := b.p.checkIDs(tokens[i]); err != nil {
			return nil, fmt.Errorf("policy: force on row %d: %w", r, err)
		}
		out[i] = make([]float32, 0, len(tokens[i]))
		if len(tokens[i]) > 0 {
			active = append(active, i)
		}
	}
	v := b.p.vocab
	for k := 0; len(active) > 0; k++ {
		run := make([]int, len(active))
		for j, a := range active {
			run[j] = rows[a]
		}
		err := b.prefill(ctx, run, func(ctx context.Context, res *forwardResult, idx []int) error {
			if res.devLogprobs != nil {
				toks := make([]int64, len(idx))
				for j, i := range idx {
					toks[j] = int64(tokens[active[i]][k])
				}
				lps, err := b.p.ops.pickLogprobs(ctx, res.devLogprobs, toks)
				if err != nil {
					return err
				}
				for j, i := range idx {
					out[active[i]] = append(out[active[i]], lps[j])
				}
				return nil
			}
			for j, i := range idx {
				a := active[i]
				logits := res.logits[j*v : (j+1)*v]
				lp := logits[tokens[a][k]]
				if !res.normalized {
					lp = float32(float64(lp) - logSumExp(logits))
				}
				out[a] = append(out[a], lp)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		next := active[:0]
		for _, a := range active {
			tok := tokens[a][k]
			row := b.rows[rows[a]]
			row.seq = append(row.seq, tok)
			if k+1 < len(tokens[a]) {
				next = append(next, a)
			}
		}
		active = next
	}
	return out, nil
}
