package policy

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

const sharedTiny = "../testdata/models/tiny-qwen2"

var sharedSeqs = [][]int32{{5, 17, 300, 2, 999, 41}, {7, 8, 9}}

func scoreWith(t *testing.T, p *Policy) [][]float32 {
	t.Helper()
	lp, err := p.Score(context.Background(), sharedSeqs)
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

func closeTo(t *testing.T, what string, got, want [][]float32, tol float64) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(float64(got[i][j] - want[i][j])); d > tol {
				t.Fatalf("%s: row %d token %d: %v, want %v (|Δ| %.2g > %.0g)", what, i, j, got[i][j], want[i][j], d, tol)
			}
		}
	}
}

// TestFromWeightsShared builds two policies over one host block that the
// caller filled (as the trainer's weights would be), without copies: both
// score exactly as the checkpoint opened from disk, and closing them leaves
// the caller's block usable.
func TestFromWeightsShared(t *testing.T) {
	needORT(t)
	disk, err := Open(sharedTiny, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	want := scoreWith(t, disk)

	cfg, err := qwen2.LoadConfig(sharedTiny)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ort.NewHostWeights(ort.HostWeightSize(qwen2.WeightSizes(cfg, onnx.Float)))
	if err != nil {
		t.Fatal(err)
	}
	defer block.Close()
	w, err := qwen2.LoadWeightsInto(sharedTiny, cfg, onnx.Float, block.Alloc)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		p, err := FromWeights(cfg, w, nil, Options{SharedWeights: block})
		if err != nil {
			t.Fatal(err)
		}
		closeTo(t, "shared", scoreWith(t, p), want, 0)
		if err := p.Close(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestFromWeightsLoRA checks the rollout policy of LoRA training: the base
// weights with adapters beside them (factored in the graph) score as the
// merged weights W + s·B·A, computed here in float64.
func TestFromWeightsLoRA(t *testing.T) {
	needORT(t)
	ck, err := qwen2.LoadCheckpoint(sharedTiny, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	const rank, scale = 4, 2.0
	rng := rand.New(rand.NewPCG(3, 4))
	adapted := qwen2.Weights{}
	merged := qwen2.Weights{}
	for name, t := range ck.Weights {
		adapted[name], merged[name] = t, t
	}
	for _, target := range []string{"model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"} {
		W := ck.Weights[target+".weight"]
		out, in := int(W.Dims[0]), int(W.Dims[1])
		a := make([]float32, rank*in)
		b := make([]float32, out*rank)
		for i := range a {
			a[i] = float32(rng.NormFloat64() * 0.1)
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64() * 0.1)
		}
		adapted[target+".lora_A.weight"] = onnx.FloatTensor([]int64{rank, int64(in)}, a)
		adapted[target+".lora_B.weight"] = onnx.FloatTensor([]int64{int64(out), rank}, b)
		base := W.Floats()
		m := make([]float32, len(base))
		for o := range out {
			for i := range in {
				s := 0.0
				for r := range rank {
					s += float64(b[o*rank+r]) * float64(a[r*in+i])
				}
				m[o*in+i] = float32(float64(base[o*in+i]) + scale*s)
			}
		}
		merged[target+".weight"] = onnx.FloatTensor(W.Dims, m)
	}
	mp, err := FromWeights(ck.Config, merged, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	lp, err := FromWeights(ck.Config, adapted, nil, Options{LoRAScale: scale})
	if err != nil {
		t.Fatal(err)
	}
	defer lp.Close()
	base, err := FromWeights(ck.Config, ck.Weights, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	want := scoreWith(t, mp)
	closeTo(t, "adapters", scoreWith(t, lp), want, 2e-5)
	// The adapters must matter, or the comparison proves nothing.
	plain := scoreWith(t, base)
	if math.Abs(float64(plain[0][2]-want[0][2])) < 1e-3 {
		t.Fatalf("the adapters barely move the log-probs (%v vs %v)", plain[0][2], want[0][2])
	}
}
