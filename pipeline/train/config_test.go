package train

import "testing"

// TestRecipeConfigParses keeps the shipped real-scale recipe loadable: every
// key must be known (LoadConfig rejects unknown keys) and valid.
func TestRecipeConfigParses(t *testing.T) {
	cfg := DefaultConfig()
	if err := LoadConfig("../../configs/ig-search-qwen2.5-3b.toml", &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Rollout.GroupSize != 5 || cfg.Optim.LR != 1e-6 || cfg.Loss.KLBeta != 0.001 || cfg.Retriever.TopK != 3 || cfg.Model.Device != "cuda:0" {
		t.Errorf("recipe values: %+v", cfg)
	}
	bad := DefaultConfig()
	if err := LoadConfig("testdata/unknown-key.toml", &bad); err == nil {
		t.Error("an unknown key was accepted")
	}
}
