package policy

import (
	"fmt"
	"path/filepath"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// openONNXFolder opens an exported ONNX folder in either layout:
//   - onnx-community (the Hugging Face Hub's, optimum's and `igsearch model
//     export`'s): DIR/onnx/model.onnx with its external data beside it, and
//     optionally DIR/onnx/scoring.onnx;
//   - flat (a torch.onnx export): DIR/model.onnx and optionally
//     DIR/scoring.onnx (openExported).
//
// A folder whose only graph is onnx/model_fp16.onnx runs with its float16
// KV cache (widened to float32 in the host cache between runs).
func (p *Policy) openONNXFolder(so ort.Options) error {
	path, err := qwen2.ExportedModelPath(p.dir)
	if err != nil {
		return err
	}
	if filepath.Dir(path) == filepath.Clean(p.dir) {
		return p.openExported(so)
	}
	if p.infer, err = ort.NewSession(path, so); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	p.source = path
	if m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true}); err == nil {
		p.batchAppend = !usesGQA(m.Graph)
	}
	sp := filepath.Join(filepath.Dir(path), qwen2.GraphFile(qwen2.ScoringGraph, onnx.Float))
	if !fileExists(sp) {
		return nil
	}
	if p.scoring, err = ort.NewSession(sp, so); err != nil {
		return fmt.Errorf("%s: %w", sp, err)
	}
	if err := p.checkScoring(); err != nil {
		return fmt.Errorf("%s: %w", sp, err)
	}
	return nil
}
