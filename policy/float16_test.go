package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

// TestFloat16Graphs runs the checkpoint as float16 graphs with a float16 KV
// cache (the CUDA configuration) on the CPU and compares it with the
// float32 policy, which the reference tests tie to PyTorch: log-probs within
// fp16 rounding, and the same greedy continuation through the KV cache.
func TestFloat16Graphs(t *testing.T) {
	needORT(t)
	p32, err := Open(sharedTiny, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p32.Close()
	p16, err := Open(sharedTiny, Options{DType: onnx.Float16})
	if err != nil {
		t.Fatal(err)
	}
	defer p16.Close()
	if p16.kvDType != onnx.Float16 {
		t.Fatalf("KV cache %s, want float16", p16.kvDType)
	}
	closeTo(t, "float16 scoring", scoreWith(t, p16), scoreWith(t, p32), 3e-2)
	// KV-path tree scoring is float32 only: a float16 policy says so.
	if p16.CanScoreTreeKV() || !p32.CanScoreTreeKV() {
		t.Errorf("CanScoreTreeKV: float16 %v, float32 %v", p16.CanScoreTreeKV(), p32.CanScoreTreeKV())
	}
	seqs := []Sequence{{IDs: []int32{5, 17, 300, 2}, Start: 2}}
	if _, _, err := p16.ScoreTreeKV(context.Background(), seqs, 1); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float16 ScoreTreeKV: %v, want an error naming float32", err)
	}
	greedy := func(p *Policy) [][]int32 {
		b, err := p.NewBatch([]Request{{Prompt: []int32{5, 17, 300, 2}}, {Prompt: []int32{9, 8, 7, 6, 5, 4, 3}}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		comps, err := b.Generate(context.Background(), []int{0, 1}, SamplingParams{MaxNewTokens: 12, EOS: []int32{}})
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]int32, len(comps))
		for i, c := range comps {
			out[i] = c.Tokens
		}
		return out
	}
	g32, g16 := greedy(p32), greedy(p16)
	for r := range g32 {
		for i := range g32[r] {
			if g16[r][i] != g32[r][i] {
				t.Fatalf("row %d: float16 greedy %v, float32 %v", r, g16[r], g32[r])
			}
		}
	}
}
