package main

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/igsearch/igsearch/models/safetensors"
)

// finite reports whether x is neither NaN nor ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// nonFiniteError explains a NaN or Inf that a stage computed (what says
// where: "prompt 3: log-prob of token 5") by naming its source: the first
// weight tensor of model that holds a non-finite value, or, where none does,
// the computation itself. It never returns nil.
func nonFiniteError(what string, x float64, model string) error {
	if name, idx, val, ok := nonFiniteWeight(model); ok {
		return fmt.Errorf("%s is %v: the model's weights are not finite (%s: %s[%d] = %v)", what, x, model, name, idx, val)
	}
	return fmt.Errorf("%s is %v: the model's weights are finite, so the forward pass overflowed (try float32 weights, or check the input)", what, x)
}

// nonFiniteWeight scans the safetensors files of the checkpoint in dir for
// the first tensor (in file and name order) holding NaN or Inf. ok is false
// when every value is finite or the files cannot be read (an ONNX folder).
func nonFiniteWeight(dir string) (name string, index int, value float32, ok bool) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	sort.Strings(files)
	for _, path := range files {
		f, err := safetensors.Open(path)
		if err != nil {
			continue
		}
		infos := f.Tensors()
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
		for _, info := range infos {
			_, xs, err := f.Float32s(info.Name)
			if err != nil {
				continue
			}
			for i, x := range xs {
				if !finite(float64(x)) {
					f.Close()
					return info.Name, i, x, true
				}
			}
		}
		f.Close()
	}
	return "", 0, 0, false
}
