package policy

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// RateShape is the shape of the runs ForwardRate times: Rows rows, each
// with Past cached tokens and New tokens run on top of them.
type RateShape struct {
	Rows, Past, New int
}

// ForwardRate measures the inference graph's best throughput on runs of one
// shape, with nothing else around them: no forking, gathering or sampling.
// It caches Past tokens (maybe none) for each of Rows rows once, then workers goroutines
// run New tokens per row on that cache, over and over, until tokens new
// tokens have run in all; the present caches are dropped. It returns the
// wall-clock time per new token. A benchmark uses it to bound from below
// what any scheduling of the same work could cost on this machine.
//
// GroupQueryAttention graphs take several new tokens on a past for one row
// only; ForwardRate reports that as an error rather than splitting the run.
func (p *Policy) ForwardRate(ctx context.Context, s RateShape, workers, tokens int) (time.Duration, error) {
	if s.Rows < 1 || s.Past < 0 || s.New < 1 || workers < 1 || tokens < 1 {
		return 0, fmt.Errorf("policy: forward rate: rows %d, new %d, workers %d and tokens %d must be positive, past %d not negative", s.Rows, s.New, workers, tokens, s.Past)
	}
	if !p.batchAppend && s.Rows > 1 && s.New > 1 && s.Past > 0 {
		return 0, fmt.Errorf("policy: forward rate: the inference graph (GroupQueryAttention) runs several new tokens on a past for one row only, not %d", s.Rows)
	}
	fill := func(cols int) (ids, mask []int64) {
		ids, mask = make([]int64, s.Rows*cols), make([]int64, s.Rows*cols)
		for i := range ids {
			ids[i], mask[i] = int64(i%p.vocab), 1
		}
		return ids, mask
	}
	past, err := p.newCache(s.Rows)
	if err != nil {
		return 0, fmt.Errorf("policy: forward rate: %w", err)
	}
	if s.Past > 0 {
		ids, mask := fill(s.Past)
		res, err := p.forward(ctx, past, ids, mask, s.Past, logitsNone)
		if err != nil {
			return 0, fmt.Errorf("policy: forward rate: %w", err)
		}
		past = res.present
	}
	defer past.release()
	ids, mask := fill(s.New)
	runs := (tokens + s.Rows*s.New - 1) / (s.Rows * s.New)
	var g errgroup.Group
	g.SetLimit(workers)
	start := time.Now()
	for range runs {
		g.Go(func() error {
			res, err := p.forward(ctx, past, ids, mask, s.New, logitsLast)
			if err != nil {
				return err
			}
			res.present.release()
			res.release()
			return nil
		})
	}
	err = g.Wait()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("policy: forward rate: %w", err)
	}
	return elapsed / time.Duration(runs*s.Rows*s.New), nil
}
