package train

import (
	"math"
	"testing"
)

func TestLearningRate(t *testing.T) {
	o := OptimConfig{LR: 1e-3, Warmup: 10, Schedule: "cosine", MinLRRatio: 0.1}
	cases := []struct {
		step int
		want float64
	}{
		{1, 1e-4}, {10, 1e-3}, // warmup: lr·step/warmup
		{60, 1e-4 + 0.9e-3*0.5}, // half-way through the cosine: (lr+floor)/2
		{110, 1e-4},             // the floor at the end
	}
	for _, c := range cases {
		if got := LearningRate(o, c.step, 110); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("step %d: lr %g, want %g", c.step, got, c.want)
		}
	}
	o.Schedule = "constant"
	if got := LearningRate(o, 50, 110); got != 1e-3 {
		t.Errorf("constant: %g", got)
	}
}

func TestAssembleAlignsColumns(t *testing.T) {
	rows := []trainRow{
		{ids: []int32{5, 6, 7, 8}, lossMask: []float32{0, 0, 1, 1}, advantages: []float32{0, 0, 0.5, 0.5}, oldLogp: []float32{0, 0, -1, -2}},
		{ids: []int32{9, 10}, lossMask: []float32{0, 1}, advantages: []float32{0, -1}, oldLogp: []float32{0, -3}},
	}
	b, err := assemble(rows)
	if err != nil {
		t.Fatal(err)
	}
	// Row 1 is left padded by 2: its token 1 (id 10) is column 2 (scored
	// from position 2, where id 9 sits).
	wantIDs := [][]int64{{5, 6, 7, 8}, {0, 0, 9, 10}}
	wantMask := [][]int64{{1, 1, 1, 1}, {0, 0, 1, 1}}
	wantLoss := [][]float32{{0, 1, 1}, {0, 0, 1}}
	wantAdv := [][]float32{{0, 0.5, 0.5}, {0, 0, -1}}
	wantOld := [][]float32{{0, -1, -2}, {0, 0, -3}}
	for r := range rows {
		for i := range wantIDs[r] {
			if b.InputIDs[r][i] != wantIDs[r][i] || b.AttentionMask[r][i] != wantMask[r][i] {
				t.Fatalf("row %d: ids %v mask %v", r, b.InputIDs[r], b.AttentionMask[r])
			}
		}
		for i := range wantLoss[r] {
			if b.LossMask[r][i] != wantLoss[r][i] || b.Advantages[r][i] != wantAdv[r][i] || b.OldLogprobs[r][i] != wantOld[r][i] {
				t.Fatalf("row %d: loss %v adv %v old %v", r, b.LossMask[r], b.Advantages[r], b.OldLogprobs[r])
			}
		}
	}
	if b.RefLogprobs != nil {
		t.Errorf("ref_logprobs without KL: %v", b.RefLogprobs)
	}
}
