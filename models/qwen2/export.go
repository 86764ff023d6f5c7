package qwen2

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/igsearch/igsearch/onnx"
)

// GraphKind names the graphs Export writes.
type GraphKind string

// The exportable graphs.
const (
	InferenceGraph GraphKind = "inference" // BuildInference: logits and KV cache
	ScoringGraph   GraphKind = "scoring"   // BuildScoring: token_logprobs (and entropy)
)

// ModelFile is the graph's file name in an exported directory; its weights go
// to ModelFile + ".data" when the model is large (onnx.Graph.Save).
const ModelFile = "model.onnx"

// Build makes the graph of the given kind.
func Build(kind GraphKind, cfg Config, w Weights, opts Options) (*onnx.Graph, error) {
	switch kind {
	case InferenceGraph, "":
		return BuildInference(cfg, w, opts)
	case ScoringGraph:
		return BuildScoring(cfg, w, opts)
	}
	return nil, fmt.Errorf("unknown graph %q: inference or scoring", kind)
}

// Export writes an onnx-community-style directory: dir/model.onnx (weights
// in dir/model.onnx.data above 1 GiB, or always when externalData) and
// dir/config.json. Every file is written atomically.
func Export(dir string, cfg Config, w Weights, kind GraphKind, opts Options, externalData bool) error {
	g, err := Build(kind, cfg, w, opts)
	if err != nil {
		return fmt.Errorf("qwen2 export %s: %w", dir, err)
	}
	g.Doc = fmt.Sprintf("Qwen2 %s graph (attention %s, %s) built by igsearch", kind, opts.Attention, opts.dtype())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("qwen2 export: %w", err)
	}
	if err := g.Save(filepath.Join(dir, ModelFile), onnx.SaveOptions{ExternalData: externalData}); err != nil {
		return fmt.Errorf("qwen2 export: %w", err)
	}
	if err := WriteConfig(filepath.Join(dir, "config.json"), cfg); err != nil {
		return fmt.Errorf("qwen2 export: %w", err)
	}
	return nil
}

// Exported is a pre-exported model directory (model.onnx + config.json), such
// as an onnx-community export or one written by Export, checked to have the
// I/O of an inference or a scoring graph.
type Exported struct {
	Dir       string
	Config    Config
	ModelPath string
	Kind      GraphKind
	// CacheType is the KV cache's element type (inference graphs).
	CacheType onnx.DType
	// HasPositionIDs reports whether the graph takes position_ids.
	HasPositionIDs bool
	// Inputs and Outputs are the graph's I/O as the file declares them.
	Inputs, Outputs []*onnx.Value
}

// OpenExported reads dir/config.json and the I/O of dir/model.onnx (not its
// weights) and checks them: an inference graph needs input_ids,
// attention_mask, past_key_values.{i}.key/value for every layer and the
// outputs logits and present.{i}.key/value; a scoring graph needs input_ids,
// attention_mask and token_logprobs.
func OpenExported(dir string) (*Exported, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ModelFile)
	m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true})
	if err != nil {
		return nil, fmt.Errorf("qwen2 exported %s: %w", dir, err)
	}
	e := &Exported{Dir: dir, Config: cfg, ModelPath: path, Inputs: m.Graph.Inputs, Outputs: m.Graph.Outputs}
	ins, outs := map[string]*onnx.Value{}, map[string]*onnx.Value{}
	for _, v := range m.Graph.Inputs {
		ins[v.Name] = v
	}
	for _, v := range m.Graph.Outputs {
		outs[v.Name] = v
	}
	for _, name := range []string{InputIDs, AttentionMask} {
		if ins[name] == nil {
			return nil, fmt.Errorf("qwen2 exported %s: model.onnx has no input %q", dir, name)
		}
	}
	_, e.HasPositionIDs = ins[PositionIDs]
	switch {
	case outs[TokenLogprobs] != nil:
		e.Kind = ScoringGraph
		return e, nil
	case outs[Logits] == nil:
		return nil, fmt.Errorf("qwen2 exported %s: model.onnx has neither %q nor %q outputs", dir, Logits, TokenLogprobs)
	}
	e.Kind = InferenceGraph
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		for _, pair := range [][2]string{{PastKey(i), PresentKey(i)}, {PastValue(i), PresentValue(i)}} {
			in, out := ins[pair[0]], outs[pair[1]]
			if in == nil || out == nil {
				return nil, fmt.Errorf("qwen2 exported %s: model.onnx lacks KV cache %q → %q for layer %d of %d",
					dir, pair[0], pair[1], i, cfg.NumHiddenLayers)
			}
			if in.Rank() != 4 || (in.Shape[1].Known() && in.Shape[1].Size != int64(cfg.NumKeyValueHeads)) {
				return nil, fmt.Errorf("qwen2 exported %s: %q has shape %v, want [batch,%d,past,%d]",
					dir, pair[0], in.Shape, cfg.NumKeyValueHeads, cfg.HeadDim())
			}
			e.CacheType = in.Type
		}
	}
	return e, nil
}
