package main

import (
	"fmt"
	"strings"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/sysmem"
)

// checkpointKind is what `model init` writes, for atomicfile.Guard: an HF
// checkpoint folder (config.json, the weights in one file or shards, and the
// files that travel with them). init replaces one only with --force, and
// refuses a folder holding anything else.
var checkpointKind = atomicfile.Kind{
	Name:   "a model checkpoint",
	Marker: "config.json",
	Owns: func(name string) bool {
		switch name {
		case "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json":
			return true
		}
		return strings.HasPrefix(name, "model") && strings.HasSuffix(name, ".safetensors")
	},
}

// exportKind is what `model export` writes: onnx-community's folder.
var exportKind = atomicfile.Kind{
	Name: "an ONNX export",
	Owns: func(name string) bool {
		switch name {
		case qwen2.OnnxDir, "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json":
			return true
		}
		return false
	},
}

// checkModelInit checks, before anything is allocated or written, that
// `model init` may write cfg's weights (stored as dt) to out: the folder is
// free or an earlier checkpoint with force, and the weights fit in memory.
func checkModelInit(out string, cfg qwen2.Config, dt onnx.DType, force bool) error {
	if err := atomicfile.Guard(out, checkpointKind, force, "--force"); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return sysmem.Check(fmt.Sprintf("the %d parameters of this config (%s)", qwen2.NumParams(cfg), dt), initBytes(cfg, dt))
}

// initBytes is the memory qwen2.InitAs takes: every tensor stored as dt,
// plus the float32 draw of the largest one.
func initBytes(cfg qwen2.Config, dt onnx.DType) uint64 {
	size := uint64(4)
	if dt == onnx.BFloat16 || dt == onnx.Float16 {
		size = 2
	}
	var total, largest uint64
	for _, p := range qwen2.Params(cfg) {
		n := uint64(1)
		for _, d := range p.Shape {
			n *= uint64(d)
		}
		total += n
		largest = max(largest, n)
	}
	return total*size + largest*4
}
