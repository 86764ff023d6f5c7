package qwen2

import (
	"encoding/json"
	"fmt"
	"io"
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

// The onnx-community folder layout (as on the Hugging Face Hub and read by
// transformers.js): DIR/config.json and the tokenizer files at the top, the
// graphs in DIR/onnx/, named by dtype (model.onnx, model_fp16.onnx), each
// with its external data in NAME + "_data".
const (
	// OnnxDir is the sub-folder of the graphs.
	OnnxDir = "onnx"
	// ModelFile is the fp32 inference graph; ModelFP16File the fp16 one.
	ModelFile     = "model.onnx"
	ModelFP16File = "model_fp16.onnx"
	// ScoringFile and ScoringFP16File hold the scoring graph, an igsearch
	// extension that transformers.js ignores.
	ScoringFile     = "scoring.onnx"
	ScoringFP16File = "scoring_fp16.onnx"
	// DataSuffix turns a graph's file name into its external data's.
	DataSuffix = "_data"
)

// CopiedFiles are the files Export copies from the checkpoint when present:
// what transformers.js reads besides config.json and the graph.
var CopiedFiles = []string{"generation_config.json", "tokenizer.json", "tokenizer_config.json"}

// GraphFile is the file name in DIR/onnx/ of a graph of the given kind and
// weights dtype.
func GraphFile(kind GraphKind, dt onnx.DType) string {
	fp16 := dt == onnx.Float16
	switch {
	case kind == ScoringGraph && fp16:
		return ScoringFP16File
	case kind == ScoringGraph:
		return ScoringFile
	case fp16:
		return ModelFP16File
	}
	return ModelFile
}

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

// ExportOptions configure Export.
type ExportOptions struct {
	// Kind is the graph to write (default InferenceGraph).
	Kind GraphKind
	// Graph are the build options; Graph.DType picks the file name.
	Graph Options
	// ExternalData always moves the weights to NAME_data; without it they
	// go there only when the model is over 1 GiB.
	ExternalData bool
	// Source is the checkpoint directory: its config.json is the base of
	// the written one (every HF key kept) and CopiedFiles are copied from
	// it. "" writes config.json from the Config alone.
	Source string
}

// Export writes the onnx-community folder dir: dir/onnx/GraphFile(kind,
// dtype) with external data as NAME_data (onnx.Graph.Save), dir/config.json
// with a "transformers.js_config" entry (external data, and the fp16 KV
// cache for fp16 graphs), and CopiedFiles from opts.Source. Exporting
// another kind or dtype into the same folder adds to it: the
// transformers.js entries of config.json are merged. Every file is written
// to a temporary name and renamed into place.
func Export(dir string, cfg Config, w Weights, opts ExportOptions) error {
	kind := opts.Kind
	if kind == "" {
		kind = InferenceGraph
	}
	g, err := Build(kind, cfg, w, opts.Graph)
	if err != nil {
		return fmt.Errorf("qwen2 export %s: %w", dir, err)
	}
	g.Doc = fmt.Sprintf("Qwen2 %s graph (attention %s, %s) built by igsearch", kind, opts.Graph.Attention, opts.Graph.dtype())
	if err := os.MkdirAll(filepath.Join(dir, OnnxDir), 0o755); err != nil {
		return fmt.Errorf("qwen2 export: %w", err)
	}
	name := GraphFile(kind, opts.Graph.dtype())
	path := filepath.Join(dir, OnnxDir, name)
	err = g.Save(path, onnx.SaveOptions{ExternalData: opts.ExternalData, DataFile: name + DataSuffix})
	if err != nil {
		return fmt.Errorf("qwen2 export: %w", err)
	}
	_, statErr := os.Stat(path + DataSuffix)
	external := statErr == nil
	if err := writeExportConfig(dir, cfg, opts.Source, name, kind, opts.Graph.dtype(), external); err != nil {
		return fmt.Errorf("qwen2 export %s: %w", dir, err)
	}
	if opts.Source != "" {
		for _, f := range CopiedFiles {
			if err := copyFileAtomic(filepath.Join(opts.Source, f), filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("qwen2 export %s: %w", dir, err)
			}
		}
	}
	return nil
}

// transformersJSKey is the config.json entry that Export maintains for
// transformers.js (other keys found there are kept).
const transformersJSKey = "transformers.js_config"

// writeExportConfig writes dir/config.json: the source's config.json (or
// cfg's), with the transformers.js entries for the graph just written
// merged into those already in dir/config.json.
//   - use_external_data_format: {FILE: 1} when FILE has external data, so
//     that transformers.js fetches FILE_data (in the browser; Node's ONNX
//     Runtime finds it beside the graph by itself).
//   - kv_cache_dtype: {"fp16": "float16"} for fp16 inference graphs, the
//     KV-cache type transformers.js 3.x allocates for the first step (4.x
//     reads it from the graph's inputs).
func writeExportConfig(dir string, cfg Config, source, file string, kind GraphKind, dt onnx.DType, external bool) error {
	var base []byte
	var err error
	if source != "" {
		base, err = os.ReadFile(filepath.Join(source, "config.json"))
	}
	if source == "" || os.IsNotExist(err) {
		base, err = json.Marshal(cfg)
	}
	if err != nil {
		return err
	}
	obj := map[string]any{}
	if err := json.Unmarshal(base, &obj); err != nil {
		return fmt.Errorf("%s/config.json: %w", source, err)
	}
	tjs := map[string]any{}
	if old, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		var prev map[string]any
		if json.Unmarshal(old, &prev) == nil {
			if m, ok := prev[transformersJSKey].(map[string]any); ok {
				tjs = m
			}
		}
	}
	if m, ok := obj[transformersJSKey].(map[string]any); ok {
		for k, v := range m {
			if _, set := tjs[k]; !set {
				tjs[k] = v
			}
		}
	}
	sub := func(key string) map[string]any {
		m, ok := tjs[key].(map[string]any)
		if !ok {
			m = map[string]any{}
			tjs[key] = m
		}
		return m
	}
	ext := sub("use_external_data_format")
	if external {
		ext[file] = 1
	} else {
		delete(ext, file)
	}
	if len(ext) == 0 {
		delete(tjs, "use_external_data_format")
	}
	if kind == InferenceGraph && dt == onnx.Float16 {
		sub("kv_cache_dtype")["fp16"] = "float16"
	}
	if len(tjs) > 0 {
		obj[transformersJSKey] = tjs
	}
	js, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "config.json"), append(js, '\n'))
}

// copyFileAtomic copies from to to through a temporary file beside to.
func copyFileAtomic(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	return writeFileAtomic(to, data)
}

// Exported is a pre-exported model directory, checked to have the I/O of an
// inference or a scoring graph: an onnx-community folder (DIR/onnx/model.onnx
// and DIR/config.json, as Export or optimum writes it) or a flat one
// (DIR/model.onnx, as torch.onnx exports and older igsearch wrote it).
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

// ExportedModelPath is the inference graph of an exported folder: the first
// of DIR/onnx/model.onnx, DIR/onnx/model_fp16.onnx and DIR/model.onnx that
// exists. It reports an error naming the paths tried when none does.
func ExportedModelPath(dir string) (string, error) {
	tried := []string{
		filepath.Join(dir, OnnxDir, ModelFile),
		filepath.Join(dir, OnnxDir, ModelFP16File),
		filepath.Join(dir, ModelFile),
	}
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no ONNX model in %s: looked for %s, %s and %s", dir, tried[0], tried[1], tried[2])
}

// OpenExported reads dir/config.json and the I/O of the folder's graph (not
// its weights: ExportedModelPath, or dir/onnx/scoring.onnx when that is the
// only graph) and checks them: an inference graph needs input_ids,
// attention_mask, past_key_values.{i}.key/value for every layer and the
// outputs logits and present.{i}.key/value; a scoring graph needs input_ids,
// attention_mask and token_logprobs.
func OpenExported(dir string) (*Exported, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	path, err := ExportedModelPath(dir)
	if err != nil {
		for _, f := range []string{ScoringFile, ScoringFP16File} {
			if p := filepath.Join(dir, OnnxDir, f); fileExists(p) {
				path, err = p, nil
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("qwen2 exported: %w", err)
		}
	}
	m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true})
	if err != nil {
		return nil, fmt.Errorf("qwen2 exported %s: %w", dir, err)
	}
	name := filepath.Base(path)
	e := &Exported{Dir: dir, Config: cfg, ModelPath: path, Inputs: m.Graph.Inputs, Outputs: m.Graph.Outputs}
	ins, outs := map[string]*onnx.Value{}, map[string]*onnx.Value{}
	for _, v := range m.Graph.Inputs {
		ins[v.Name] = v
	}
	for _, v := range m.Graph.Outputs {
		outs[v.Name] = v
	}
	for _, in := range []string{InputIDs, AttentionMask} {
		if ins[in] == nil {
			return nil, fmt.Errorf("qwen2 exported %s: %s has no input %q", dir, name, in)
		}
	}
	_, e.HasPositionIDs = ins[PositionIDs]
	switch {
	case outs[TokenLogprobs] != nil:
		e.Kind = ScoringGraph
		return e, nil
	case outs[Logits] == nil:
		return nil, fmt.Errorf("qwen2 exported %s: %s has neither %q nor %q outputs", dir, name, Logits, TokenLogprobs)
	}
	e.Kind = InferenceGraph
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		for _, pair := range [][2]string{{PastKey(i), PresentKey(i)}, {PastValue(i), PresentValue(i)}} {
			in, out := ins[pair[0]], outs[pair[1]]
			if in == nil || out == nil {
				return nil, fmt.Errorf("qwen2 exported %s: %s lacks KV cache %q → %q for layer %d of %d",
					dir, name, pair[0], pair[1], i, cfg.NumHiddenLayers)
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
