package policy

import (
	"context"
	"strings"
	"testing"
)

// TestForwardRate runs the rate measurement on both attention variants, and
// checks that GroupQueryAttention's one-row limit is an error, not a crash.
func TestForwardRate(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"checkpoint", "standard"} {
		p := openModel(t, kind)
		for _, s := range []RateShape{{Rows: 1, Past: 20, New: 8}, {Rows: 3, Past: 9, New: 1}, {Rows: 4, Past: 0, New: 5}} {
			d, err := p.ForwardRate(ctx, s, 2, 64)
			if err != nil {
				t.Fatalf("%s %+v: %v", kind, s, err)
			}
			if d <= 0 {
				t.Errorf("%s %+v: %v per token", kind, s, d)
			}
		}
		_, err := p.ForwardRate(ctx, RateShape{Rows: 4, Past: 10, New: 6}, 1, 24)
		switch {
		case kind == "standard" && err != nil:
			t.Errorf("standard attention, 4 rows × 6 new tokens on a past: %v", err)
		case kind == "checkpoint" && (err == nil || !strings.Contains(err.Error(), "one row")):
			t.Errorf("GroupQueryAttention, 4 rows × 6 new tokens on a past: got %v, want the one-row error", err)
		}
	}
	if _, err := openModel(t, "checkpoint").ForwardRate(ctx, RateShape{Rows: 0, Past: 3, New: 4}, 1, 4); err == nil {
		t.Error("zero rows were accepted")
	}
}
