package igscore

import (
	"context"
	"sync"
	"sync/atomic"
)

// parallel calls f(ctx, i) for i in [0, n) on up to workers goroutines and
// returns the first error; the context passed to f is cancelled once one
// call fails, so that the others stop early.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		done  atomic.Int64
	)
	for range min(max(workers, 1), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if first == nil && done.Load() < int64(n) {
		first = ctx.Err() // cancelled from outside
	}
	return first
}
