package policy

import (
	"context"
	"math"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
)

// TestFromWeightsMatchesOpen: a policy built from in-memory weights scores
// exactly like the one opened from the same checkpoint on disk.
func TestFromWeightsMatchesOpen(t *testing.T) {
	const dir = "../testdata/models/tiny-qwen2"
	disk, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	ck, err := qwen2.LoadCheckpoint(dir, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	mem, err := FromWeights(ck.Config, ck.Weights, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	seqs := [][]int32{{5, 17, 300, 2, 999, 41}, {7, 8}}
	want, err := disk.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := mem.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("row %d: %d log-probs, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if math.Abs(float64(got[i][j]-want[i][j])) > 1e-6 {
				t.Fatalf("row %d token %d: %v vs %v", i, j, got[i][j], want[i][j])
			}
		}
	}
}
