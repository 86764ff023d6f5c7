package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// LoRA adapters (Hu et al. 2021) as Hugging Face PEFT defines them: a
// targeted projection weight W [out, in] is used as
//
//	W' = W + (alpha/r)·B·A,   A [r, in] (lora_A.weight), B [out, r] (lora_B.weight)
//
// with A initialised like PEFT (kaiming-uniform, a = √5, i.e. U(−1/√in,
// 1/√in)) and B zeros, so that training starts from the base model exactly.
// The gradient graph takes every model weight as a frozen input and only the
// adapters as trainable ones. The adapters enter the model's linear layers
// in factored form, y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ (qwen2.Options.LoRAScale),
// so W' is never materialised: no weight-sized tensor per target per step,
// and no weight-sized gradient (dA and dB come from [tokens, r] products).
//
// Checkpoints keep the base model in config.json + model.safetensors,
// unchanged, and add PEFT's adapter_config.json and adapter_model.safetensors
// (LoRAConfigFile, LoRAWeightsFile), which peft.PeftModel.from_pretrained
// loads on top of the base model.

// Files of a PEFT LoRA adapter directory.
const (
	LoRAConfigFile  = "adapter_config.json"
	LoRAWeightsFile = "adapter_model.safetensors"
)

// loraPrefix is the prefix of PEFT's tensor names for a causal LM: the
// PeftModel wraps the transformers model, whose own names start at "model.".
const loraPrefix = "base_model.model."

// loraModules maps each projection LoRA may target to its block in a Qwen2
// decoder layer, in the order of qwen2.Params.
var loraModules = []struct{ name, block string }{
	{"q_proj", "self_attn."}, {"k_proj", "self_attn."}, {"v_proj", "self_attn."}, {"o_proj", "self_attn."},
	{"gate_proj", "mlp."}, {"up_proj", "mlp."}, {"down_proj", "mlp."},
}

// DefaultLoRATargets are the projections adapted when LoRAConfig.Targets is
// empty: the attention's q, k, v and o (PEFT's usual choice for Qwen2).
func DefaultLoRATargets() []string { return []string{"q_proj", "k_proj", "v_proj", "o_proj"} }

// LoRAConfig chooses the adapters (ArtifactOptions.LoRA).
type LoRAConfig struct {
	// Rank is r, the inner dimension of B·A; it must be positive.
	Rank int
	// Alpha is lora_alpha; the update is scaled by Alpha/Rank.
	Alpha float64
	// Targets names the adapted projections of every layer: any of q_proj,
	// k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj. Empty means
	// DefaultLoRATargets.
	Targets []string
	// Seed draws the initial A matrices; the same seed gives the same
	// adapters.
	Seed uint64
	// BaseModel is written as base_model_name_or_path in
	// adapter_config.json (a hub id or the base checkpoint's directory).
	BaseModel string
}

// Scale is the LoRA scaling factor alpha/r.
func (c LoRAConfig) Scale() float64 { return c.Alpha / float64(c.Rank) }

// targets returns the adapted projections in canonical (qwen2.Params) order.
func (c LoRAConfig) targets() []string {
	want := c.Targets
	if len(want) == 0 {
		want = DefaultLoRATargets()
	}
	var out []string
	for _, m := range loraModules {
		if slices.Contains(want, m.name) {
			out = append(out, m.name)
		}
	}
	return out
}

// LoRAFromFlags is the LoRA configuration of the command-line flags
// --lora-rank, --lora-alpha and --lora-targets: nil for rank 0 (full
// fine-tuning), alpha 2·rank when 0, targets DefaultLoRATargets when empty.
// base is recorded as the adapters' base model.
func LoRAFromFlags(rank int, alpha float64, targets []string, base string) (*LoRAConfig, error) {
	switch {
	case rank < 0:
		return nil, fmt.Errorf("--lora-rank %d must not be negative", rank)
	case rank == 0 && (alpha != 0 || len(targets) > 0):
		return nil, fmt.Errorf("--lora-alpha and --lora-targets need --lora-rank")
	case rank == 0:
		return nil, nil
	}
	if alpha == 0 {
		alpha = 2 * float64(rank)
	}
	c := &LoRAConfig{Rank: rank, Alpha: alpha, Targets: targets, BaseModel: base}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c LoRAConfig) validate() error {
	if c.Rank <= 0 {
		return fmt.Errorf("lora: rank %d must be positive", c.Rank)
	}
	if c.Alpha <= 0 || math.IsInf(c.Alpha, 0) || math.IsNaN(c.Alpha) {
		return fmt.Errorf("lora: alpha %g must be positive", c.Alpha)
	}
	for _, t := range c.Targets {
		if !slices.ContainsFunc(loraModules, func(m struct{ name, block string }) bool { return m.name == t }) {
			return fmt.Errorf("lora: unknown target module %q: want q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj", t)
		}
	}
	return nil
}

// loraAdapter is one adapted weight and its two adapter tensors, named as in
// PEFT's adapter_model.safetensors.
type loraAdapter struct {
	Weight string // HF name of W, e.g. model.layers.0.self_attn.q_proj.weight
	A, B   Param
}

// loraAdapters lists the adapters of c for cfg, layer by layer in
// qwen2.Params order.
func loraAdapters(cfg qwen2.Config, c LoRAConfig) ([]loraAdapter, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	shapes := map[string][]int64{}
	for _, p := range qwen2.Params(cfg) {
		shapes[p.Name] = p.Shape
	}
	targets := c.targets()
	var out []loraAdapter
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		for _, m := range loraModules {
			if !slices.Contains(targets, m.name) {
				continue
			}
			module := fmt.Sprintf("model.layers.%d.%s%s", l, m.block, m.name)
			shape := shapes[module+".weight"]
			if len(shape) != 2 {
				return nil, fmt.Errorf("lora: %s.weight is not a 2-D weight of this model", module)
			}
			r := int64(c.Rank)
			out = append(out, loraAdapter{
				Weight: module + ".weight",
				A:      Param{Name: loraPrefix + module + ".lora_A.weight", Shape: []int64{r, shape[1]}},
				B:      Param{Name: loraPrefix + module + ".lora_B.weight", Shape: []int64{shape[0], r}},
			})
		}
	}
	return out, nil
}

// loraGraph is what addLoRA wrote into a gradient graph.
type loraGraph struct {
	weights   map[string]*onnx.Value // the model's weights plus MODULE.lora_A/B.weight for qwen2's factored linear
	trainable []Param                // A, B of every adapter
	inputs    []*onnx.Value          // their graph inputs, in trainable's order
	init      map[string][]float32   // their initial values
}

// addLoRA declares the adapters as graph inputs of g (PEFT names) and adds
// them to the forward's weights under the keys that qwen2's linear layer
// looks for (MODULE.lora_A.weight, MODULE.lora_B.weight); the caller sets
// qwen2.Options.LoRAScale.
func addLoRA(g *onnx.Graph, cfg qwen2.Config, c LoRAConfig, weights map[string]*onnx.Value) (*loraGraph, error) {
	adapters, err := loraAdapters(cfg, c)
	if err != nil {
		return nil, err
	}
	lg := &loraGraph{weights: map[string]*onnx.Value{}, init: initLoRA(adapters, c.Seed)}
	for name, v := range weights {
		lg.weights[name] = v
	}
	for _, ad := range adapters {
		a := g.Input(ad.A.Name, onnx.Float, onnx.Dims(ad.A.Shape...)...)
		b := g.Input(ad.B.Name, onnx.Float, onnx.Dims(ad.B.Shape...)...)
		module := strings.TrimSuffix(ad.Weight, ".weight")
		lg.weights[module+".lora_A.weight"] = a
		lg.weights[module+".lora_B.weight"] = b
		lg.trainable = append(lg.trainable, ad.A, ad.B)
		lg.inputs = append(lg.inputs, a, b)
	}
	return lg, nil
}

// initLoRA draws PEFT's initial adapters: A ~ U(−1/√in, 1/√in) (torch's
// kaiming_uniform_ with a = √5), B = 0.
func initLoRA(adapters []loraAdapter, seed uint64) map[string][]float32 {
	rng := rand.New(rand.NewPCG(seed, 0x10a4))
	out := map[string][]float32{}
	for _, ad := range adapters {
		bound := 1 / math.Sqrt(float64(ad.A.Shape[1]))
		a := make([]float32, numElements(ad.A.Shape))
		for i := range a {
			a[i] = float32((2*rng.Float64() - 1) * bound)
		}
		out[ad.A.Name] = a
		out[ad.B.Name] = make([]float32, numElements(ad.B.Shape))
	}
	return out
}

// MergedWeights returns the model's weights with the LoRA adapters merged in
// (W + alpha/r·B·A for every adapted W), for generation and scoring with the
// adapted policy. Without LoRA it is Weights. The adapted tensors are new;
// the others alias the trainer's state and are valid until the next Step.
func (t *Trainer) MergedWeights() qwen2.Weights {
	w := t.Weights()
	lc := t.opts.Artifact.LoRA
	if lc == nil {
		return w
	}
	adapters, err := loraAdapters(t.Config, *lc)
	if err != nil {
		panic(fmt.Sprintf("trainer: %v", err)) // validated when the trainer was built
	}
	ctx := ort.WithPhase(context.Background(), PhaseWeights)
	for _, ad := range adapters {
		a, errA := readFloats(ctx, t.res.params[ad.A.Name])
		b, errB := readFloats(ctx, t.res.params[ad.B.Name])
		if err := errors.Join(errA, errB); err != nil {
			panic(fmt.Sprintf("trainer: reading adapter %s: %v", ad.Weight, err))
		}
		w[ad.Weight] = mergeAdapter(w[ad.Weight], ad, lc.Scale(), a, b)
	}
	return w
}

// PolicyWeights are the weights for a policy over the trainer's host-weight
// block (policy.Options.SharedWeights = HostWeights, LoRAScale = scale):
// the model's weights in place and, with LoRA, the adapters under the keys
// of qwen2's factored linear layer (MODULE.lora_A.weight,
// MODULE.lora_B.weight), so that generation uses x·Wᵀ + s·(x·Aᵀ)·Bᵀ over
// the one copy of the base. scale is 0 without LoRA. The tensors alias the
// trainer's state: close the policy before the next Step. The adapters are
// read from the resident state (metered under PhaseWeights; on the CPU a
// view, a failed copy from a device panics).
func (t *Trainer) PolicyWeights() (w qwen2.Weights, scale float64) {
	w = t.Weights()
	lc := t.opts.Artifact.LoRA
	if lc == nil {
		return w, 0
	}
	adapters, err := loraAdapters(t.Config, *lc)
	if err != nil {
		panic(fmt.Sprintf("trainer: %v", err)) // validated when the trainer was built
	}
	ctx := ort.WithPhase(context.Background(), PhaseWeights)
	for _, ad := range adapters {
		module := strings.TrimSuffix(ad.Weight, ".weight")
		a, errA := ort.Read(ctx, t.res.params[ad.A.Name])
		b, errB := ort.Read(ctx, t.res.params[ad.B.Name])
		if err := errors.Join(errA, errB); err != nil {
			panic(fmt.Sprintf("trainer: reading adapter %s: %v", ad.Weight, err))
		}
		w[module+".lora_A.weight"] = &onnx.Tensor{DType: onnx.Float, Dims: ad.A.Shape, Raw: a}
		w[module+".lora_B.weight"] = &onnx.Tensor{DType: onnx.Float, Dims: ad.B.Shape, Raw: b}
	}
	return w, lc.Scale()
}

// MergeLoRA loads the PEFT LoRA adapter in dir (adapter_config.json +
// adapter_model.safetensors, as Trainer.Save writes them) and returns base
// with the adapters merged in, for a policy that generates with the adapted
// model. base is not modified; unadapted tensors are shared with it.
func MergeLoRA(cfg qwen2.Config, base qwen2.Weights, dir string) (qwen2.Weights, error) {
	lc, err := ReadLoRAConfig(dir)
	if err != nil {
		return nil, err
	}
	adapters, err := loraAdapters(cfg, lc)
	if err != nil {
		return nil, fmt.Errorf("lora %s: %w", dir, err)
	}
	vals, err := readAdapters(dir, adapters)
	if err != nil {
		return nil, err
	}
	out := qwen2.Weights{}
	for k, v := range base {
		out[k] = v
	}
	for _, ad := range adapters {
		w := base[ad.Weight]
		if w == nil || w.DType != onnx.Float {
			return nil, fmt.Errorf("lora %s: base weight %s missing or not float32", dir, ad.Weight)
		}
		out[ad.Weight] = mergeAdapter(w, ad, lc.Scale(), vals[ad.A.Name], vals[ad.B.Name])
	}
	return out, nil
}

// mergeAdapter computes W + scale·B·A in float64 accumulation.
func mergeAdapter(w *onnx.Tensor, ad loraAdapter, scale float64, a, b []float32) *onnx.Tensor {
	base := w.Floats()
	r, in := int(ad.A.Shape[0]), int(ad.A.Shape[1])
	out := int(ad.B.Shape[0])
	merged := make([]float32, len(base))
	for o := 0; o < out; o++ {
		bRow := b[o*r : (o+1)*r]
		for i := 0; i < in; i++ {
			var s float64
			for k, bk := range bRow {
				s += float64(bk) * float64(a[k*in+i])
			}
			merged[o*in+i] = base[o*in+i] + float32(scale*s)
		}
	}
	return onnx.FloatTensor(w.Dims, merged)
}

// peftConfig is adapter_config.json, with PEFT's field names.
type peftConfig struct {
	PeftType          string   `json:"peft_type"`
	TaskType          string   `json:"task_type"`
	BaseModel         string   `json:"base_model_name_or_path"`
	R                 int      `json:"r"`
	LoRAAlpha         float64  `json:"lora_alpha"`
	TargetModules     []string `json:"target_modules"`
	LoRADropout       float64  `json:"lora_dropout"`
	Bias              string   `json:"bias"`
	FanInFanOut       bool     `json:"fan_in_fan_out"`
	InferenceMode     bool     `json:"inference_mode"`
	InitLoRAWeights   bool     `json:"init_lora_weights"`
	ModulesToSave     []string `json:"modules_to_save"`
	LayersToTransform []int    `json:"layers_to_transform"`
	UseRSLoRA         bool     `json:"use_rslora"`
}

// ReadLoRAConfig reads a PEFT adapter_config.json from dir. Only plain LoRA
// on Qwen2 projections without bias or rsLoRA scaling is accepted; the
// returned config has Seed 0.
func ReadLoRAConfig(dir string) (LoRAConfig, error) {
	path := filepath.Join(dir, LoRAConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return LoRAConfig{}, fmt.Errorf("lora: %w", err)
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return LoRAConfig{}, fmt.Errorf("lora %s: %w", path, err)
	}
	switch {
	case pc.PeftType != "LORA":
		return LoRAConfig{}, fmt.Errorf("lora %s: peft_type %q, want LORA", path, pc.PeftType)
	case pc.Bias != "" && pc.Bias != "none":
		return LoRAConfig{}, fmt.Errorf("lora %s: bias %q is not supported (want none)", path, pc.Bias)
	case pc.FanInFanOut:
		return LoRAConfig{}, fmt.Errorf("lora %s: fan_in_fan_out is not supported", path)
	case pc.UseRSLoRA:
		return LoRAConfig{}, fmt.Errorf("lora %s: use_rslora is not supported", path)
	case len(pc.ModulesToSave) > 0 || len(pc.LayersToTransform) > 0:
		return LoRAConfig{}, fmt.Errorf("lora %s: modules_to_save and layers_to_transform are not supported", path)
	}
	lc := LoRAConfig{Rank: pc.R, Alpha: pc.LoRAAlpha, Targets: pc.TargetModules, BaseModel: pc.BaseModel}
	if err := lc.validate(); err != nil {
		return LoRAConfig{}, fmt.Errorf("lora %s: %w", path, err)
	}
	return lc, nil
}

// saveAdapters writes adapter_config.json and adapter_model.safetensors to
// dir when the trainer trains LoRA adapters; otherwise it does nothing.
func (t *Trainer) saveAdapters(dir string) error {
	lc := t.opts.Artifact.LoRA
	if lc == nil {
		return nil
	}
	adapters, err := loraAdapters(t.Config, *lc)
	if err != nil {
		return err
	}
	pc := peftConfig{
		PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModel: lc.BaseModel,
		R: lc.Rank, LoRAAlpha: lc.Alpha, TargetModules: lc.targets(), Bias: "none",
		InferenceMode: true, InitLoRAWeights: true,
	}
	js, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, LoRAConfigFile), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	var ts []safetensors.Tensor
	ctx := ort.WithPhase(context.Background(), PhaseCheckpoint)
	for _, ad := range adapters {
		for _, p := range []Param{ad.A, ad.B} {
			data, err := ort.Read(ctx, t.res.params[p.Name])
			if err != nil {
				return fmt.Errorf("lora: %s: %w", p.Name, err)
			}
			ts = append(ts, safetensors.Tensor{Name: p.Name, DType: safetensors.F32, Shape: p.Shape, Data: data})
		}
	}
	if err := safetensors.Write(filepath.Join(dir, LoRAWeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	return nil
}

// loadAdapters replaces the trainer's initial adapters with those saved in
// dir, after checking that dir's adapter_config.json describes the same
// adapters. A trainer without LoRA refuses a checkpoint that has adapters.
func (t *Trainer) loadAdapters(dir string) error {
	lc := t.opts.Artifact.LoRA
	if lc == nil {
		if _, err := os.Stat(filepath.Join(dir, LoRAConfigFile)); err == nil {
			return fmt.Errorf("checkpoint has LoRA adapters (%s); resume with ArtifactOptions.LoRA set", LoRAConfigFile)
		}
		return nil
	}
	saved, err := ReadLoRAConfig(dir)
	if err != nil {
		return err
	}
	if saved.Rank != lc.Rank || saved.Alpha != lc.Alpha || !slices.Equal(saved.targets(), lc.targets()) {
		return fmt.Errorf("lora: checkpoint adapters (r=%d, alpha=%g, %s) differ from the options (r=%d, alpha=%g, %s)",
			saved.Rank, saved.Alpha, strings.Join(saved.targets(), ","), lc.Rank, lc.Alpha, strings.Join(lc.targets(), ","))
	}
	adapters, err := loraAdapters(t.Config, *lc)
	if err != nil {
		return err
	}
	vals, err := readAdapters(dir, adapters)
	if err != nil {
		return err
	}
	ctx := ort.WithPhase(context.Background(), PhaseCheckpoint)
	for name, v := range vals {
		if err := copyIn(ctx, t.res.params[name], v); err != nil {
			return fmt.Errorf("lora: %s: %w", name, err)
		}
	}
	return nil
}

// readAdapters reads every adapter tensor of adapters from dir's
// adapter_model.safetensors, checking shapes.
func readAdapters(dir string, adapters []loraAdapter) (map[string][]float32, error) {
	path := filepath.Join(dir, LoRAWeightsFile)
	f, err := safetensors.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("lora: %s is missing", path)
		}
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, ad := range adapters {
		for _, p := range []Param{ad.A, ad.B} {
			info, data, err := f.Float32s(p.Name)
			if err != nil {
				return nil, fmt.Errorf("lora %s: %w", path, err)
			}
			if !sameShape(info.Shape, p.Shape) {
				return nil, fmt.Errorf("lora %s: %s has shape %v, want %v", path, p.Name, info.Shape, p.Shape)
			}
			out[p.Name] = append([]float32(nil), data...)
		}
	}
	return out, nil
}

// ResidentPolicyWeights are the weights for a rollout policy that reads
// the trainer's resident tensors in place (policy.Options.ResidentWeights =
// resident, SharedWeights = HostWeights' block, LoRAScale = scale), so that
// nothing crosses the boundary to build it. w names the same tensors as
// PolicyWeights and serves for their shapes only: where the weights live on
// a device the block is not brought up to date. When the weights lie in the
// host block already (the CPU), resident is nil and w is PolicyWeights.
// The tensors are the trainer's: close the policy before the next Step.
func (t *Trainer) ResidentPolicyWeights() (w qwen2.Weights, scale float64, resident map[string]*ort.Tensor) {
	if t.res.onBlock {
		w, scale = t.PolicyWeights()
		return w, scale, nil
	}
	w, resident = t.blockWeights(), map[string]*ort.Tensor{}
	for name := range w {
		resident[name] = t.res.params[name]
	}
	lc := t.opts.Artifact.LoRA
	if lc == nil {
		return w, 0, resident
	}
	adapters, err := loraAdapters(t.Config, *lc)
	if err != nil {
		panic(fmt.Sprintf("trainer: %v", err)) // validated when the trainer was built
	}
	for _, ad := range adapters {
		module := strings.TrimSuffix(ad.Weight, ".weight")
		for name, a := range map[string]Param{module + ".lora_A.weight": ad.A, module + ".lora_B.weight": ad.B} {
			w[name] = &onnx.Tensor{DType: onnx.Float, Dims: a.Shape, Raw: make([]byte, 4*numElements(a.Shape))}
			resident[name] = t.res.params[a.Name]
		}
	}
	return w, lc.Scale(), resident
}
