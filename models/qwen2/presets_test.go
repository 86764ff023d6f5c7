package qwen2

import "testing"

// TestPresetSizes checks the presets against the published parameter counts
// (the model cards: 0.49B, 1.54B, 3.09B, 7.61B, tied embeddings counted once).
func TestPresetSizes(t *testing.T) {
	for name, want := range map[string]int64{
		"qwen2.5-0.5b": 494_032_768,
		"qwen2.5-1.5b": 1_543_714_304,
		"qwen2.5-3b":   3_085_938_688,
		"qwen2.5-7b":   7_615_616_512,
	} {
		cfg, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := NumParams(cfg); got != want {
			t.Errorf("%s: %d parameters, want %d", name, got, want)
		}
	}
	if _, err := Preset("qwen2.5-14b"); err == nil {
		t.Error("an unknown preset should be refused")
	}
}
