package qwen2

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join(testModels, "tiny-qwen2"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HiddenSize != 64 || cfg.NumKeyValueHeads != 2 || cfg.HeadDim() != 16 || cfg.RopeTheta != 1e6 ||
		cfg.TieWordEmbeddings || len(cfg.EOSTokenIDs) != 1 || cfg.EOSTokenIDs[0] != 151643 {
		t.Errorf("config %+v", cfg)
	}
	c, err := ReadConfig(strings.NewReader(`{"model_type":"qwen2","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,
		"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"vocab_size":10,"rms_norm_eps":1e-6,"rope_theta":10000,
		"eos_token_id":[1,2]}`))
	if err != nil || c.HeadDim() != 32 || len(c.EOSTokenIDs) != 2 {
		t.Errorf("head_dim/eos list: %+v %v", c, err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama","hidden_size":64}`), 0o644)
	_, err = LoadConfig(dir)
	wantErr(t, err, "model_type", `"llama"`, dir)
	_, err = LoadCheckpoint(dir, onnx.Float)
	wantErr(t, err, "unsupported model_type")
}

func TestConfigRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	want := Bench100MConfig()
	if err := WriteConfig(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.HiddenSize != 512 || got.VocabSize != 151936 || !got.TieWordEmbeddings || got.EOSTokenIDs[0] != 151643 {
		t.Errorf("round trip: %+v", got)
	}
	if n := NumParams(want); n < 90e6 || n > 110e6 {
		t.Errorf("bench model has %d params, want ~100M", n)
	}
}

func TestTruncatedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(testModels, "tiny-qwen2")
	copyFile(t, filepath.Join(src, "config.json"), filepath.Join(dir, "config.json"))
	b, _ := os.ReadFile(filepath.Join(src, "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "model.safetensors"), b[:len(b)-1000], 0o644)
	_, err := LoadCheckpoint(dir, onnx.Float)
	wantErr(t, err, filepath.Join(dir, "model.safetensors"), "truncated", "tensor ")
}

// writeTiny writes TinyConfig weights, edited by edit, as an F32 checkpoint.
func writeTiny(t *testing.T, edit func(ts []safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := TinyConfig()
	w := Init(cfg, 1)
	var ts []safetensors.Tensor
	for _, p := range Params(cfg) {
		ts = append(ts, safetensors.Tensor{Name: p.Name, DType: safetensors.F32, Shape: p.Shape, Data: w[p.Name].Raw})
	}
	if err := safetensors.WriteCheckpoint(dir, edit(ts), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(filepath.Join(dir, "config.json"), cfg); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMissingAndMisshapenTensors(t *testing.T) {
	dir := writeTiny(t, func(ts []safetensors.Tensor) []safetensors.Tensor {
		var out []safetensors.Tensor
		for _, x := range ts {
			if x.Name != "model.layers.1.mlp.up_proj.weight" {
				out = append(out, x)
			}
		}
		return out
	})
	_, err := LoadCheckpoint(dir, onnx.Float)
	wantErr(t, err, "missing tensor", `"model.layers.1.mlp.up_proj.weight"`, dir)

	dir = writeTiny(t, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range ts {
			if x.Name == "model.layers.0.self_attn.k_proj.weight" {
				ts[i].Shape = []int64{x.Shape[1], x.Shape[0]}
			}
		}
		return ts
	})
	_, err = LoadCheckpoint(dir, onnx.Float)
	wantErr(t, err, `"model.layers.0.self_attn.k_proj.weight"`, "shape [64 32]", "want [32 64]")
}

func TestInitSaveLoadBF16(t *testing.T) {
	cfg := TinyConfig()
	w := Init(cfg, 7)
	if w2 := Init(cfg, 7); string(w2["model.layers.0.mlp.up_proj.weight"].Raw) != string(w["model.layers.0.mlp.up_proj.weight"].Raw) {
		t.Error("Init is not deterministic")
	}
	if w3 := Init(cfg, 8); string(w3["model.embed_tokens.weight"].Raw) == string(w["model.embed_tokens.weight"].Raw) {
		t.Error("seed ignored")
	}
	for _, x := range w["model.layers.1.post_attention_layernorm.weight"].Floats() {
		if x != 1 {
			t.Fatal("norm weight not 1")
		}
	}
	for _, x := range w["model.layers.1.self_attn.q_proj.bias"].Floats() {
		if x != 0 {
			t.Fatal("bias not 0")
		}
	}
	emb := w["model.embed_tokens.weight"].Floats()
	ss := 0.0
	for _, x := range emb {
		ss += float64(x) * float64(x)
	}
	if std := math.Sqrt(ss / float64(len(emb))); math.Abs(std-0.02) > 0.001 {
		t.Errorf("embedding std %g, want 0.02", std)
	}

	// F32 round trip.
	dir := t.TempDir()
	if err := Save(dir, cfg, w, 0); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(dir, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	if string(ck.Weights["lm_head.weight"].Raw) != string(w["lm_head.weight"].Raw) {
		t.Error("F32 round trip changed lm_head")
	}
	ck.Close()

	// BF16 on disk, converted to fp32 and to fp16 on load.
	bdir := writeTiny(t, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range ts {
			f := onnx.FloatView(x.Data)
			raw := make([]byte, 2*len(f))
			for j, v := range f {
				binary.LittleEndian.PutUint16(raw[2*j:], uint16(math.Float32bits(v)>>16))
			}
			ts[i].DType, ts[i].Data = safetensors.BF16, raw
		}
		return ts
	})
	ref := Init(cfg, 1)
	for _, dt := range []onnx.DType{onnx.Float, onnx.Float16} {
		ck, err := LoadCheckpoint(bdir, dt)
		if err != nil {
			t.Fatal(err)
		}
		got, want := ck.Weights["model.layers.0.self_attn.o_proj.weight"], ref["model.layers.0.self_attn.o_proj.weight"].Floats()
		if got.DType != dt {
			t.Fatalf("dtype %s, want %s", got.DType, dt)
		}
		for j, v := range want {
			var x float32
			if dt == onnx.Float {
				x = got.Floats()[j]
			} else {
				x = onnx.Float16ToFloat32(binary.LittleEndian.Uint16(got.Raw[2*j:]))
			}
			if math.Abs(float64(x-v)) > 1e-2*math.Abs(float64(v))+1e-6 {
				t.Fatalf("%s [%d] = %g, want ≈ %g", dt, j, x, v)
			}
		}
		ck.Close()
	}
}

// TestTrainingForward runs BuildForward with the weights as graph inputs and
// checks it against the reference logits, and that it uses standard ops only.
func TestTrainingForward(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2")
	cfg := ck.Config
	g := onnx.NewGraph("train_forward")
	ids := g.Input(InputIDs, onnx.Int64, dimBatch, dimSeq)
	mask := g.Input(AttentionMask, onnx.Int64, dimBatch, dimSeq)
	weights := WeightInputs(g, cfg, onnx.Float)
	fw, err := BuildForward(g, cfg, weights, ids, mask, Options{Entropy: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := fw.TokenLogprobs.Shape.String(); got != "[batch_size,sequence_length_minus_1]" {
		t.Errorf("token_logprobs shape %s", got)
	}
	if got := fw.Logits.Shape.String(); got != "[batch_size,sequence_length_minus_1,1024]" {
		t.Errorf("logits shape %s", got)
	}
	for _, n := range g.Nodes {
		if n.Domain != "" || n.Op == "SimplifiedLayerNormalization" {
			t.Errorf("training forward uses non-standard op %s.%s", n.Domain, n.Op)
		}
	}
	g.Output(TokenLogprobs, fw.TokenLogprobs)
	g.Output(Entropy, fw.Entropy)
	s := newTestSession(t, g, 1)
	B, T := int64(len(ref.InputIDs)), int64(len(ref.InputIDs[0]))
	in := map[string]tensor{
		InputIDs:      {shape: []int64{B, T}, i: flat64(ref.InputIDs)},
		AttentionMask: {shape: []int64{B, T}, i: flat64(ref.AttentionMask)},
	}
	for name, w := range ck.Weights {
		in[name] = tensor{shape: w.Dims, f: w.Floats()}
	}
	out, err := s.run(in)
	if err != nil {
		t.Fatal(err)
	}
	maxErr := 0.0
	for b := 0; b < int(B); b++ {
		for p := 0; p+1 < int(T); p++ {
			if ref.AttentionMask[b][p] == 0 {
				continue
			}
			want, _ := logSoftmaxAt(ref.Logits[b][p], ref.InputIDs[b][p+1])
			maxErr = max(maxErr, math.Abs(float64(out[TokenLogprobs].f[b*int(T-1)+p])-want))
		}
	}
	t.Logf("training forward token_logprobs: max abs error %.3g", maxErr)
	if maxErr > 1e-4 {
		t.Errorf("max abs error %g > 1e-4", maxErr)
	}

	if _, err := BuildForward(onnx.NewGraph("x"), cfg, weights, ids, mask, Options{Attention: ContribAttention}); err == nil {
		t.Error("contrib attention accepted for training")
	}
	delete(weights, "model.norm.weight")
	g2 := onnx.NewGraph("y")
	_, err = BuildForward(g2, cfg, weights, g2.Input(InputIDs, onnx.Int64, dimBatch, dimSeq), g2.Input(AttentionMask, onnx.Int64, dimBatch, dimSeq), Options{})
	wantErr(t, err, `"model.norm.weight"`)
}
