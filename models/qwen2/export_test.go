package qwen2

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
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
	// The torch.onnx export that ships with the test data, in the flat
	// layout (DIR/model.onnx).
	runExported(t, filepath.Join(testModels, "tiny-qwen2"), ref)

	// The same torch export laid out as an onnx-community folder.
	cdir := t.TempDir()
	os.Mkdir(filepath.Join(cdir, OnnxDir), 0o755)
	copyFile(t, filepath.Join(testModels, "tiny-qwen2", "model.onnx"), filepath.Join(cdir, OnnxDir, ModelFile))
	copyFile(t, filepath.Join(testModels, "tiny-qwen2", "config.json"), filepath.Join(cdir, "config.json"))
	runExported(t, cdir, ref)

	src := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		copyFile(t, filepath.Join(testModels, "tiny-qwen2", f), filepath.Join(src, f))
	}
	os.WriteFile(filepath.Join(src, "generation_config.json"), []byte(`{"do_sample": false, "eos_token_id": 151643}`), 0o644)
	os.WriteFile(filepath.Join(src, "tokenizer_config.json"), []byte(`{"model_max_length": 131072}`), 0o644)
	dir := t.TempDir()
	opts := ExportOptions{Graph: Options{Attention: ContribAttention}, ExternalData: true, Source: src}
	if err := Export(dir, ck.Config, ck.Weights, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, OnnxDir, "model.onnx_data")); err != nil {
		t.Errorf("no external data: %v", err)
	}
	for _, f := range []string{"generation_config.json", "tokenizer_config.json"} {
		got, _ := os.ReadFile(filepath.Join(dir, f))
		want, _ := os.ReadFile(filepath.Join(src, f))
		if string(got) != string(want) {
			t.Errorf("%s: got %q, want the checkpoint's %q", f, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); !os.IsNotExist(err) {
		t.Errorf("tokenizer.json appeared without a source one: %v", err)
	}
	runExported(t, dir, ref)
	var cfg struct {
		MaxWindowLayers int `json:"max_window_layers"` // an HF key Config does not model
		TJS             struct {
			External map[string]int    `json:"use_external_data_format"`
			KV       map[string]string `json:"kv_cache_dtype"`
		} `json:"transformers.js_config"`
	}
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	if cfg.MaxWindowLayers != 2 || cfg.TJS.External["model.onnx"] != 1 || cfg.TJS.KV != nil {
		t.Errorf("config.json: %+v, want the checkpoint's keys and use_external_data_format {model.onnx: 1}", cfg)
	}

	// The scoring graph beside it, inline; then fp16, which adds its own entries.
	opts = ExportOptions{Kind: ScoringGraph, Source: src}
	if err := Export(dir, ck.Config, ck.Weights, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, OnnxDir, ScoringFile)); err != nil {
		t.Error(err)
	}
	ck16, err := LoadCheckpoint(src, onnx.Float16)
	if err != nil {
		t.Fatal(err)
	}
	defer ck16.Close()
	if err := Export(dir, ck16.Config, ck16.Weights, ExportOptions{Graph: Options{DType: onnx.Float16}, ExternalData: true, Source: src}); err != nil {
		t.Fatal(err)
	}
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	if cfg.TJS.External["model.onnx"] != 1 || cfg.TJS.External["model_fp16.onnx"] != 1 || cfg.TJS.KV["fp16"] != "float16" {
		t.Errorf("config.json after the fp16 export: %+v", cfg.TJS)
	}
	if _, err := os.Stat(filepath.Join(dir, OnnxDir, "model_fp16.onnx_data")); err != nil {
		t.Error(err)
	}
	if e, err := OpenExported(dir); err != nil || e.Kind != InferenceGraph || filepath.Base(e.ModelPath) != ModelFile {
		t.Errorf("OpenExported prefers fp32 model.onnx: %+v %v", e, err)
	}

	sdir := t.TempDir()
	if err := Export(sdir, ck.Config, ck.Weights, ExportOptions{Kind: ScoringGraph}); err != nil {
		t.Fatal(err)
	}
	e, err := OpenExported(sdir)
	if err != nil || e.Kind != ScoringGraph {
		t.Fatalf("scoring export: %+v %v", e, err)
	}
	os.WriteFile(filepath.Join(sdir, OnnxDir, ScoringFile), []byte("not onnx"), 0o644)
	if _, err := OpenExported(sdir); err == nil || !strings.Contains(err.Error(), sdir) {
		t.Errorf("corrupt scoring.onnx: %v", err)
	}
	empty := t.TempDir()
	copyFile(t, filepath.Join(src, "config.json"), filepath.Join(empty, "config.json"))
	if _, err := OpenExported(empty); err == nil || !strings.Contains(err.Error(), "no ONNX model in") {
		t.Errorf("a folder without a graph: %v", err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
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
