package qwen2

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

func ioNames(vs []*onnx.Value) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

// runExported runs an exported inference directory through the same
// prefill + decode as the built graphs and checks the reference logits.
func runExported(t *testing.T, dir string, ref *reference) {
	t.Helper()
	e, err := OpenExported(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != InferenceGraph || !e.HasPositionIDs || e.CacheType != onnx.Float {
		t.Fatalf("exported %+v", e)
	}
	s := newTestSessionFrom(t, e.ModelPath, nil, ioNames(e.Inputs), ioNames(e.Outputs), 1)
	gen := newGeneration(s, e.Config, len(ref.InputIDs))
	logits := gen.step(t, ref.InputIDs, ref.AttentionMask, ref.PositionIDs)
	T, V := len(ref.InputIDs[0]), e.Config.VocabSize
	maxErr := 0.0
	for bi := range ref.InputIDs {
		for p := 0; p < T; p++ {
			if ref.AttentionMask[bi][p] == 1 {
				for v := 0; v < V; v++ {
					maxErr = max(maxErr, math.Abs(float64(logits.f[(bi*T+p)*V+v])-ref.Logits[bi][p][v]))
				}
			}
		}
	}
	for step := range ref.DecodeLogits {
		tokens := []int64{ref.DecodeTokens[0][step], ref.DecodeTokens[1][step], ref.DecodeTokens[2][step]}
		logits := gen.decodeStep(t, tokens)
		for bi := range tokens {
			for v := 0; v < V; v++ {
				maxErr = max(maxErr, math.Abs(float64(logits.f[bi*V+v])-ref.DecodeLogits[step][bi][v]))
			}
		}
	}
	t.Logf("%s: prefill + decode logits max abs error %.3g", dir, maxErr)
	if maxErr > 1e-4 {
		t.Errorf("%s: max abs error %g > 1e-4", dir, maxErr)
	}
}

func TestExportAndOpenExported(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2")
	// The torch.onnx export that ships with the test data.
	runExported(t, filepath.Join(testModels, "tiny-qwen2"), ref)

	dir := t.TempDir()
	if err := Export(dir, ck.Config, ck.Weights, InferenceGraph, Options{Attention: ContribAttention}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ModelFile+".data")); err != nil {
		t.Errorf("no external data: %v", err)
	}
	runExported(t, dir, ref)

	sdir := t.TempDir()
	if err := Export(sdir, ck.Config, ck.Weights, ScoringGraph, Options{}, false); err != nil {
		t.Fatal(err)
	}
	e, err := OpenExported(sdir)
	if err != nil || e.Kind != ScoringGraph {
		t.Fatalf("scoring export: %+v %v", e, err)
	}

	os.WriteFile(filepath.Join(sdir, ModelFile), []byte("not onnx"), 0o644)
	if _, err := OpenExported(sdir); err == nil {
		t.Error("corrupt model.onnx accepted")
	}
}

// TestFloat16Graph checks the fp16 (CUDA) graphs: fp16 weights and KV cache,
// fp32 logits, and, through the scoring graph on CPU (ORT falls back where
// it lacks fp16 kernels), log-probs near the fp32 reference.
func TestFloat16Graph(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2")
	ck, err := LoadCheckpoint(filepath.Join(testModels, "tiny-qwen2"), onnx.Float16)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, attn := range []Attention{StandardAttention, ContribAttention} {
		g, err := BuildInference(ck.Config, ck.Weights, Options{Attention: attn, DType: onnx.Float16})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range g.Inputs {
			if v.Name == PastKey(0) && v.Type != onnx.Float16 {
				t.Errorf("past key is %s", v.Type)
			}
		}
		for _, v := range g.Outputs {
			if v.Name == Logits && v.Type != onnx.Float {
				t.Errorf("logits are %s", v.Type)
			}
		}
		if _, err := g.Marshal(); err != nil {
			t.Fatal(err)
		}
		sg, err := BuildScoring(ck.Config, ck.Weights, Options{Attention: attn, DType: onnx.Float16})
		if err != nil {
			t.Fatal(err)
		}
		lp, _ := score(t, newTestSession(t, sg, 1), ref)
		T := len(ref.InputIDs[0])
		maxErr := 0.0
		for b := range ref.InputIDs {
			for p := 0; p+1 < T; p++ {
				if ref.AttentionMask[b][p] == 1 {
					want, _ := logSoftmaxAt(ref.Logits[b][p], ref.InputIDs[b][p+1])
					maxErr = max(maxErr, math.Abs(float64(lp.f[b*(T-1)+p])-want))
				}
			}
		}
		t.Logf("fp16 %s scoring: token_logprobs max abs error %.3g", attn, maxErr)
		if maxErr > 5e-3 {
			t.Errorf("fp16 %s scoring: max abs error %g > 5e-3", attn, maxErr)
		}
	}
	if _, err := BuildInference(ck.Config, ck.Weights, Options{}); err == nil {
		t.Error("fp16 weights accepted for an fp32 graph")
	}
}
