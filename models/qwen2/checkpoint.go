package qwen2

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
)

// Param is one weight of the model: its Hugging Face name and shape.
type Param struct {
	Name  string
	Shape []int64
}

// Params lists the model's weights in HF names and layout (Linear weights are
// [out, in]), in a fixed order: embedding, layers, final norm, then lm_head
// when the embeddings are not tied.
func Params(cfg Config) []Param {
	h, i, d := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.HeadDim())
	qo, kv := int64(cfg.NumAttentionHeads)*d, int64(cfg.NumKeyValueHeads)*d
	ps := []Param{{"model.embed_tokens.weight", []int64{int64(cfg.VocabSize), h}}}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ps = append(ps,
			Param{p + "input_layernorm.weight", []int64{h}},
			Param{p + "self_attn.q_proj.weight", []int64{qo, h}},
			Param{p + "self_attn.q_proj.bias", []int64{qo}},
			Param{p + "self_attn.k_proj.weight", []int64{kv, h}},
			Param{p + "self_attn.k_proj.bias", []int64{kv}},
			Param{p + "self_attn.v_proj.weight", []int64{kv, h}},
			Param{p + "self_attn.v_proj.bias", []int64{kv}},
			Param{p + "self_attn.o_proj.weight", []int64{h, qo}},
			Param{p + "post_attention_layernorm.weight", []int64{h}},
			Param{p + "mlp.gate_proj.weight", []int64{i, h}},
			Param{p + "mlp.up_proj.weight", []int64{i, h}},
			Param{p + "mlp.down_proj.weight", []int64{h, i}},
		)
	}
	ps = append(ps, Param{"model.norm.weight", []int64{h}})
	if !cfg.TieWordEmbeddings {
		ps = append(ps, Param{"lm_head.weight", []int64{int64(cfg.VocabSize), h}})
	}
	return ps
}

// NumParams counts the model's weights (tied embeddings once).
func NumParams(cfg Config) int64 {
	n := int64(0)
	for _, p := range Params(cfg) {
		e := int64(1)
		for _, d := range p.Shape {
			e *= d
		}
		n += e
	}
	return n
}

// Weights maps HF tensor names to their data (float32, or float16 for a CUDA
// fp16 graph).
type Weights map[string]*onnx.Tensor

// Checkpoint is a loaded Hugging Face checkpoint directory. Float32 weights
// read from F32 files alias the memory-mapped files: keep the Checkpoint open
// (not Closed) while the Weights or graphs built from them are in use.
type Checkpoint struct {
	Dir     string
	Config  Config
	Weights Weights
	files   *safetensors.Checkpoint
}

// Close releases the mapped files; Weights that alias them become invalid.
func (c *Checkpoint) Close() error {
	if c.files == nil {
		return nil
	}
	err := c.files.Close()
	c.files = nil
	return err
}

// LoadCheckpoint reads dir's config.json and weights (model.safetensors or
// sharded with model.safetensors.index.json), checks every expected tensor is
// present with the expected shape, and converts them to dt (onnx.Float, or
// onnx.Float16). F32 files with dt Float and F16 files with dt Float16 are not
// copied. lm_head.weight is ignored when the embeddings are tied.
func LoadCheckpoint(dir string, dt onnx.DType) (*Checkpoint, error) {
	if dt != onnx.Float && dt != onnx.Float16 {
		return nil, fmt.Errorf("qwen2 %s: weights dtype must be float32 or float16, not %s", dir, dt)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	files, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("qwen2 %s: %w", dir, err)
	}
	c := &Checkpoint{Dir: dir, Config: cfg, Weights: Weights{}, files: files}
	for _, p := range Params(cfg) {
		t, err := loadTensor(files, p, dt)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("qwen2 %s: %w", dir, err)
		}
		c.Weights[p.Name] = t
	}
	return c, nil
}

func loadTensor(files *safetensors.Checkpoint, p Param, dt onnx.DType) (*onnx.Tensor, error) {
	info, raw, err := files.Raw(p.Name)
	if err != nil {
		return nil, fmt.Errorf("missing tensor %q (shape %v)", p.Name, p.Shape)
	}
	if !sameShape(info.Shape, p.Shape) {
		return nil, fmt.Errorf("tensor %q has shape %v, want %v", p.Name, info.Shape, p.Shape)
	}
	switch {
	case dt == onnx.Float && info.DType == safetensors.F32, dt == onnx.Float16 && info.DType == safetensors.F16:
		return &onnx.Tensor{DType: dt, Dims: p.Shape, Raw: raw}, nil
	}
	out := make([]byte, info.NumElements()*int64(dt.Size()))
	if err := convertInto(out, dt, info.DType, raw); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", p.Name, err)
	}
	return &onnx.Tensor{DType: dt, Dims: p.Shape, Raw: out}, nil
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Init makes random weights the way HF's Qwen2 _init_weights does: Linear and
// embedding weights normal(0, initializer_range) (0.02 if unset), biases 0,
// norm weights 1. The same seed gives the same weights.
func Init(cfg Config, seed uint64) Weights { return InitAs(cfg, seed, onnx.Float) }

// InitAs is Init with the weights stored as dt: onnx.Float, or
// onnx.BFloat16 (rounded to nearest even from the same float32 draws, as a
// bf16 Hub checkpoint holds them), which takes half the memory: a 3B shape
// is made in 6 GB instead of 12.
func InitAs(cfg Config, seed uint64, dt onnx.DType) Weights {
	std := cfg.InitializerRange
	if std == 0 {
		std = 0.02
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w := Weights{}
	for _, p := range Params(cfg) {
		n := int64(1)
		for _, d := range p.Shape {
			n *= d
		}
		data := make([]float32, n)
		switch {
		case len(p.Shape) == 1 && isNorm(p.Name):
			for i := range data {
				data[i] = 1
			}
		case len(p.Shape) == 1: // bias
		default:
			for i := range data {
				data[i] = float32(rng.NormFloat64() * std)
			}
		}
		if dt == onnx.BFloat16 {
			raw := make([]byte, 2*n)
			for i, x := range data {
				binary.LittleEndian.PutUint16(raw[2*i:], float32ToBFloat16(x))
			}
			w[p.Name] = &onnx.Tensor{DType: onnx.BFloat16, Dims: p.Shape, Raw: raw}
			continue
		}
		w[p.Name] = onnx.FloatTensor(p.Shape, data)
	}
	return w
}

// float32ToBFloat16 rounds to nearest even (finite inputs).
func float32ToBFloat16(x float32) uint16 {
	b := math.Float32bits(x)
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

func isNorm(name string) bool {
	return strings.HasSuffix(name, "layernorm.weight") || name == "model.norm.weight"
}

// Save writes cfg and w to dir in HF layout (config.json and
// model.safetensors, or shards above maxShard bytes when maxShard > 0), each
// file atomically. Float32, float16 and bfloat16 tensors are written as F32,
// F16 and BF16.
func Save(dir string, cfg Config, w Weights, maxShard int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("qwen2 save %s: %w", dir, err)
	}
	var ts []safetensors.Tensor
	for _, p := range Params(cfg) {
		t := w[p.Name]
		if t == nil {
			return fmt.Errorf("qwen2 save %s: missing tensor %q", dir, p.Name)
		}
		dt := safetensors.F32
		switch t.DType {
		case onnx.Float16:
			dt = safetensors.F16
		case onnx.BFloat16:
			dt = safetensors.BF16
		case onnx.Float:
		default:
			return fmt.Errorf("qwen2 save %s: tensor %q: unsupported dtype %s", dir, p.Name, t.DType)
		}
		if !sameShape(t.Dims, p.Shape) {
			return fmt.Errorf("qwen2 save %s: tensor %q has shape %v, want %v", dir, p.Name, t.Dims, p.Shape)
		}
		ts = append(ts, safetensors.Tensor{Name: p.Name, DType: dt, Shape: p.Shape, Data: t.Raw})
	}
	if err := safetensors.WriteCheckpoint(dir, ts, map[string]string{"format": "pt"}, maxShard); err != nil {
		return fmt.Errorf("qwen2 save: %w", err)
	}
	return WriteConfig(filepath.Join(dir, "config.json"), cfg)
}

// WriteConfig writes cfg as an HF config.json, atomically.
func WriteConfig(path string, cfg Config) error {
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(js, '\n'))
}

// writeFileAtomic writes data to a temporary file beside path, synced and
// renamed into place.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
