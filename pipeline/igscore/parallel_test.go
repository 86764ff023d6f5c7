package igscore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestParallel(t *testing.T) {
	var sum atomic.Int64
	if err := parallel(context.Background(), 100, 3, func(_ context.Context, i int) error {
		sum.Add(int64(i))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sum.Load() != 4950 {
		t.Errorf("sum of 0..99 = %d, want 4950: an item was skipped or run twice", sum.Load())
	}
	boom := errors.New("boom")
	var ran atomic.Int64
	err := parallel(context.Background(), 1000, 2, func(ctx context.Context, i int) error {
		ran.Add(1)
		if i == 5 {
			return boom
		}
		return ctx.Err()
	})
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the failing call's error", err)
	}
	if ran.Load() == 1000 {
		t.Error("every item ran after a failure")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := parallel(ctx, 10, 2, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
	if err := parallel(context.Background(), 0, 2, func(context.Context, int) error { return boom }); err != nil {
		t.Errorf("no items: %v", err)
	}
}
