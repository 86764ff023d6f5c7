package trainer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// TestBaseLogprobs checks that a LoRA trainer whose adapters are non-zero
// scores with the base model alone: its log-probs equal the log-softmax of
// PyTorch's logits in the tiny-qwen2 reference (three sequences of 12, 7
// and 1 tokens, the last with nothing to score), computed here in float64.
// A token budget of 12 puts each sequence in a run of its own.
func TestBaseLogprobs(t *testing.T) {
	ck, _ := loadFixture(t)
	data, err := os.ReadFile(fixtureDir + "/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		InputIDs      [][]int32     `json:"input_ids"`
		AttentionMask [][]int       `json:"attention_mask"`
		Logits        [][][]float64 `json:"logits"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	var seqs [][]int32
	var pads []int
	for r, row := range ref.InputIDs {
		pad := 0
		for pad < len(row) && ref.AttentionMask[r][pad] == 0 {
			pad++
		}
		seqs, pads = append(seqs, row[pad:]), append(pads, pad)
	}
	for _, budget := range []int{0, 12} {
		opts := loraTestOptions("q_proj", "down_proj")
		opts.MicroBatchTokens = budget
		tr, err := New(ck.Config, ck.Weights, opts)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for _, p := range tr.art.Trainable { // adapters on: they must not count
			for i := range tr.state.Params[p.Name] {
				tr.state.Params[p.Name][i] = float32(rng.NormFloat64() * 0.1)
			}
		}
		got, err := tr.BaseLogprobs(seqs)
		tr.Close()
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for r, s := range seqs {
			if len(got[r]) != max(len(s)-1, 0) {
				t.Fatalf("budget %d: sequence %d: %d log-probs, want %d", budget, r, len(got[r]), len(s)-1)
			}
			for c := 0; c+1 < len(s); c++ {
				logits := ref.Logits[r][pads[r]+c]
				m := math.Inf(-1)
				for _, x := range logits {
					m = math.Max(m, x)
				}
				z := 0.0
				for _, x := range logits {
					z += math.Exp(x - m)
				}
				want := logits[s[c+1]] - m - math.Log(z)
				d := math.Abs(float64(got[r][c]) - want)
				worst = math.Max(worst, d)
				if d > 1e-4 {
					t.Errorf("budget %d: sequence %d, position %d: %.6f, PyTorch %.6f", budget, r, c, got[r][c], want)
				}
			}
		}
		t.Logf("budget %d: worst |log-prob − PyTorch| %.2g", budget, worst)
	}
}
