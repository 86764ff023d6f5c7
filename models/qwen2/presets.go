package qwen2

import (
	"fmt"
	"slices"
	"strings"
)

// Presets are the published Qwen2.5 base-model shapes (each model's
// config.json on the Hugging Face Hub, Qwen/Qwen2.5-*), for dry runs and
// benchmarks with random weights.
var Presets = map[string]Config{
	"qwen2.5-0.5b": qwen25(896, 4864, 24, 14, 2, 151936, true),
	"qwen2.5-1.5b": qwen25(1536, 8960, 28, 12, 2, 151936, true),
	"qwen2.5-3b":   qwen25(2048, 11008, 36, 16, 2, 151936, true),
	"qwen2.5-7b":   qwen25(3584, 18944, 28, 28, 4, 152064, false), // 7B pads its vocabulary
}

func qwen25(hidden, inter, layers, heads, kv, vocab int, tied bool) Config {
	return Config{
		ModelType:             "qwen2",
		HiddenSize:            hidden,
		IntermediateSize:      inter,
		NumHiddenLayers:       layers,
		NumAttentionHeads:     heads,
		NumKeyValueHeads:      kv,
		VocabSize:             vocab,
		RMSNormEps:            1e-6,
		RopeTheta:             1e6,
		TieWordEmbeddings:     tied,
		MaxPositionEmbeddings: 32768,
		TorchDType:            "bfloat16",
		BOSTokenID:            151643,
		EOSTokenIDs:           []int64{151643},
		InitializerRange:      0.02,
		HiddenAct:             "silu",
	}
}

// Preset returns the named preset's config.
func Preset(name string) (Config, error) {
	cfg, ok := Presets[strings.ToLower(name)]
	if !ok {
		names := make([]string, 0, len(Presets))
		for n := range Presets {
			names = append(names, n)
		}
		slices.Sort(names)
		return Config{}, fmt.Errorf("unknown preset %q: one of %s", name, strings.Join(names, ", "))
	}
	cfg.EOSTokenIDs = slices.Clone(cfg.EOSTokenIDs)
	return cfg, nil
}
