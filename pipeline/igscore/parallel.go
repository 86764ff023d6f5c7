package igscore

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// parallel calls f(ctx, i) for i in [0, n) on up to workers goroutines and
// returns the first error; the context passed to f is cancelled once one
// call fails, so that the others stop early, and calls not yet started are
// skipped.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	started := 0
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		started++
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return f(gctx, i)
		})
	}
	if err := g.Wait(); err != nil || started == n {
		return err
	}
	return ctx.Err() // cancelled from outside before every call started
}
