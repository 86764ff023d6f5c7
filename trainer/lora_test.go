package trainer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx/ort"
)

// sftBatch is four sequences of 12 tokens of cfg's vocabulary, the second
// left padded by 3, every real next token trained.
func sftBatch(cfg qwen2.Config) *Batch {
	b := &Batch{}
	for r := 0; r < 4; r++ {
		ids := make([]int64, 12)
		mask := make([]int64, 12)
		lm := make([]float32, 11)
		for i := range ids {
			ids[i] = int64((r*37 + i*i*11 + 5) % cfg.VocabSize)
			mask[i] = 1
			if r == 1 && i < 3 {
				ids[i], mask[i] = 0, 0
			}
			if i > 0 && mask[i] == 1 && mask[i-1] == 1 {
				lm[i-1] = 1
			}
		}
		b.InputIDs = append(b.InputIDs, ids)
		b.AttentionMask = append(b.AttentionMask, mask)
		b.LossMask = append(b.LossMask, lm)
	}
	return b
}

func loraTestOptions(targets ...string) Options {
	return Options{
		Artifact: ArtifactOptions{
			Loss: LossConfig{Kind: LossSFT},
			LoRA: &LoRAConfig{Rank: 4, Alpha: 8, Targets: targets, Seed: 3, BaseModel: "tiny-qwen2"},
		},
		Optim: AdamWConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1},
	}
}

func snapshot(params map[string][]float32) map[string][]float32 {
	out := map[string][]float32{}
	for k, v := range params {
		out[k] = slices.Clone(v)
	}
	return out
}

// TestLoRATrainsAdaptersOnly checks that a LoRA trainer starts exactly at the
// base model's loss (B = 0), lists only adapters as trainable, leaves every
// base weight bit for bit unchanged, and lowers the SFT loss.
func TestLoRATrainsAdaptersOnly(t *testing.T) {
	ck, _ := loadFixture(t)
	b := sftBatch(ck.Config)
	opts := loraTestOptions()

	base, err := New(ck.Config, ck.Weights, Options{Artifact: ArtifactOptions{Loss: opts.Artifact.Loss}, Optim: opts.Optim})
	if err != nil {
		t.Fatal(err)
	}
	baseLoss, err := base.Step(b)
	base.Close()
	if err != nil {
		t.Fatal(err)
	}

	tr, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got, want := len(tr.art.Frozen), len(qwen2.Params(ck.Config)); got != want {
		t.Errorf("%d frozen weights, want every model weight (%d)", got, want)
	}
	// Default targets q, k, v, o: two tensors each per layer.
	if got, want := len(tr.art.Trainable), 2*4*ck.Config.NumHiddenLayers; got != want {
		t.Errorf("%d trainable tensors, want %d", got, want)
	}
	for _, p := range tr.art.Trainable {
		if !strings.Contains(p.Name, ".lora_") {
			t.Errorf("trainable %s is not an adapter", p.Name)
		}
	}
	start := snapshot(tr.State().Params)
	first, err := tr.Step(b)
	if err != nil {
		t.Fatal(err)
	}
	if first.Loss != baseLoss.Loss {
		t.Errorf("LoRA loss at init %.9g, base model %.9g: B = 0 must give the base model exactly", first.Loss, baseLoss.Loss)
	}
	last := first
	for i := 0; i < 30; i++ {
		if last, err = tr.Step(b); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("LoRA SFT loss %.4f → %.4f in %d steps", first.Loss, last.Loss, last.Step)
	if last.Loss > 0.8*first.Loss {
		t.Errorf("LoRA did not reduce the SFT loss enough: %.4f → %.4f", first.Loss, last.Loss)
	}
	for _, p := range qwen2.Params(ck.Config) {
		if !slices.Equal(tr.State().Params[p.Name], start[p.Name]) {
			t.Errorf("base weight %s changed", p.Name)
		}
		if _, ok := tr.State().M[p.Name]; ok {
			t.Errorf("base weight %s has optimizer state", p.Name)
		}
	}
	for _, p := range tr.art.Trainable {
		if slices.Equal(tr.State().Params[p.Name], start[p.Name]) {
			t.Errorf("adapter %s did not change", p.Name)
		}
	}
}

// TestLoRAGradient checks the adapter gradients against the full-weight
// gradient of the merged model: with W' = W + s·B·A,
// dL/dA = s·Bᵀ·dL/dW' and dL/dB = s·dL/dW'·Aᵀ. B is random so that both are
// non-trivial. It also checks MergedWeights against the graph's W'.
func TestLoRAGradient(t *testing.T) {
	ck, _ := loadFixture(t)
	b := sftBatch(ck.Config)
	opts := loraTestOptions("q_proj", "v_proj", "down_proj")
	lc := opts.Artifact.LoRA
	tr, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	adapters, err := loraAdapters(ck.Config, *lc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range adapters {
		for i := range tr.state.Params[ad.B.Name] {
			tr.state.Params[ad.B.Name][i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	full, err := New(ck.Config, tr.MergedWeights(), Options{Artifact: ArtifactOptions{Loss: opts.Artifact.Loss}, Optim: opts.Optim})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()

	scale := float32(1.0 / 41) // any loss_scale; both runs use the same
	run := func(tr *Trainer) (map[string][]float32, float64) {
		g := map[string][]float32{}
		for _, p := range tr.art.Trainable {
			g[p.Name] = make([]float32, numElements(p.Shape))
		}
		out, err := tr.runGradInto(b, microBatch{0, len(b.InputIDs), 0}, scale, g)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Destroy()
		l, err := ort.Values[float32](out[outLoss])
		if err != nil {
			t.Fatal(err)
		}
		return g, float64(l[0])
	}
	gl, lossLoRA := run(tr)
	gf, lossFull := run(full)
	relClose(t, "loss (LoRA vs merged weights)", lossLoRA, lossFull, 1e-5)

	s := lc.Scale()
	worst := 0.0
	for _, ad := range adapters {
		dw := gf[ad.Weight]
		A, B := tr.state.Params[ad.A.Name], tr.state.Params[ad.B.Name]
		r, in, out := int(ad.A.Shape[0]), int(ad.A.Shape[1]), int(ad.B.Shape[0])
		wantA := make([]float64, r*in)
		wantB := make([]float64, out*r)
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				d := float64(dw[o*in+i])
				for k := 0; k < r; k++ {
					wantA[k*in+i] += s * float64(B[o*r+k]) * d
					wantB[o*r+k] += s * d * float64(A[k*in+i])
				}
			}
		}
		for _, c := range []struct {
			name string
			got  []float32
			want []float64
		}{{ad.A.Name, gl[ad.A.Name], wantA}, {ad.B.Name, gl[ad.B.Name], wantB}} {
			var num, den float64
			for i, w := range c.want {
				d := float64(c.got[i]) - w
				num += d * d
				den += w * w
			}
			rel := math.Sqrt(num / den)
			worst = math.Max(worst, rel)
			if den == 0 || rel > 1e-4 {
				t.Errorf("%s: gradient relative L2 error %.3g (|want| = %.3g)", c.name, rel, math.Sqrt(den))
			}
		}
	}
	t.Logf("adapter gradients vs projected full-weight gradients: worst relative L2 error %.2g", worst)
}

// TestLoRASaveResume checks the PEFT files that Save writes (config fields,
// tensor names and shapes, base model unchanged), MergeLoRA on them, and
// that resuming continues bit for bit.
func TestLoRASaveResume(t *testing.T) {
	ck, _ := loadFixture(t)
	b := sftBatch(ck.Config)
	opts := loraTestOptions("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

	straight, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer straight.Close()
	for i := 0; i < 2; i++ {
		if _, err := straight.Step(b); err != nil {
			t.Fatal(err)
		}
	}

	first, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Step(b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := first.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	merged := first.MergedWeights() // views of first's weights: close it at the end
	defer first.Close()

	// adapter_config.json: PEFT's fields.
	data, err := os.ReadFile(filepath.Join(dir, LoRAConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var pc map[string]any
	if err := json.Unmarshal(data, &pc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4.0, "lora_alpha": 8.0, "bias": "none",
		"lora_dropout": 0.0, "fan_in_fan_out": false, "base_model_name_or_path": "tiny-qwen2",
	} {
		if pc[k] != want {
			t.Errorf("adapter_config.json %s = %v, want %v", k, pc[k], want)
		}
	}
	if got, _ := json.Marshal(pc["target_modules"]); string(got) != `["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]` {
		t.Errorf("target_modules %s", got)
	}

	// adapter_model.safetensors: PEFT names and shapes.
	f, err := safetensors.Open(filepath.Join(dir, LoRAWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	h, i, r := int64(ck.Config.HiddenSize), int64(ck.Config.IntermediateSize), int64(4)
	kv := int64(ck.Config.NumKeyValueHeads * ck.Config.HeadDim())
	want := map[string][]int64{}
	for l := 0; l < ck.Config.NumHiddenLayers; l++ {
		for _, m := range []struct {
			name    string
			in, out int64
		}{
			{"self_attn.q_proj", h, h}, {"self_attn.k_proj", h, kv}, {"self_attn.v_proj", h, kv}, {"self_attn.o_proj", h, h},
			{"mlp.gate_proj", h, i}, {"mlp.up_proj", h, i}, {"mlp.down_proj", i, h},
		} {
			p := "base_model.model.model.layers." + string(rune('0'+l)) + "." + m.name
			want[p+".lora_A.weight"] = []int64{r, m.in}
			want[p+".lora_B.weight"] = []int64{m.out, r}
		}
	}
	var names []string
	for _, info := range f.Tensors() {
		names = append(names, info.Name)
		if w, ok := want[info.Name]; !ok {
			t.Errorf("unexpected adapter tensor %s", info.Name)
		} else if !slices.Equal(info.Shape, w) || info.DType != safetensors.F32 {
			t.Errorf("%s: %s%v, want F32%v", info.Name, info.DType, info.Shape, w)
		}
	}
	f.Close()
	if len(names) != len(want) {
		sort.Strings(names)
		t.Errorf("adapter tensors %v, want %d", names, len(want))
	}

	// The model files hold the base model.
	saved, err := qwen2.LoadCheckpoint(dir, ck.Weights["model.norm.weight"].DType)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range qwen2.Params(ck.Config) {
		if !slices.Equal(saved.Weights[p.Name].Floats(), ck.Weights[p.Name].Floats()) {
			t.Errorf("model.safetensors %s is not the base weight", p.Name)
		}
	}
	fromDir, err := MergeLoRA(ck.Config, saved.Weights, dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range merged {
		if !slices.Equal(fromDir[name].Floats(), w.Floats()) {
			t.Errorf("MergeLoRA %s differs from the trainer's MergedWeights", name)
		}
	}
	saved.Close()

	if _, _, err := Resume(dir, Options{Artifact: ArtifactOptions{Loss: opts.Artifact.Loss}, Optim: opts.Optim}); err == nil || !strings.Contains(err.Error(), "LoRA") {
		t.Errorf("resume without LoRA options: err = %v, want a LoRA error", err)
	}
	resumed, _, err := Resume(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if _, err := resumed.Step(b); err != nil {
		t.Fatal(err)
	}
	for name, want := range straight.State().Params {
		if !slices.Equal(resumed.State().Params[name], want) {
			t.Errorf("%s: resumed run differs from the uninterrupted one", name)
		}
	}
}

// TestLoRAConfigErrors checks the option checks.
func TestLoRAConfigErrors(t *testing.T) {
	cfg := qwen2.TinyConfig()
	for _, c := range []LoRAConfig{{Rank: 0, Alpha: 1}, {Rank: 2, Alpha: 0}, {Rank: 2, Alpha: 1, Targets: []string{"lm_head"}}} {
		if _, err := BuildGradGraph(cfg, ArtifactOptions{Loss: LossConfig{Kind: LossSFT}, LoRA: &c}); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
