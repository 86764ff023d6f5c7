package train

import "testing"

// TestRecipeConfigParses keeps the shipped real-scale recipe loadable: every
// key must be known (LoadConfig rejects unknown keys) and valid.
func TestRecipeConfigParses(t *testing.T) {
	for _, tc := range []struct {
		file     string
		protocol string
		chat     bool
		context  int
		warmup   int
	}{
		{"ig-search-qwen2.5-3b.toml", "autorefine", true, 6656, 0},
		{"search-r1-qwen2.5-3b.toml", "search-r1", true, 4096, 572},
	} {
		cfg := DefaultConfig()
		if err := LoadConfig("../../configs/"+tc.file, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		r := cfg.Rollout
		if cfg.Rollout.GroupSize != 5 || cfg.Optim.LR != 1e-6 || cfg.Loss.KLBeta != 0.001 || cfg.Retriever.TopK != 3 ||
			cfg.Model.Device != "cuda:0" || r.Protocol != tc.protocol || r.Chat != tc.chat || r.MaxContext != tc.context ||
			r.TopP != 0.95 || cfg.Optim.Warmup != tc.warmup || cfg.Loss.EntropyCoeff != 0.001 || cfg.Train.EvalPerSource != 500 {
			t.Errorf("%s: recipe values: %+v", tc.file, cfg)
		}
		// Search-R1's per-turn cap is not the trajectory's.
		if r.MaxNewTokens > 512 || r.MaxResponse < r.MaxContext {
			t.Errorf("%s: max_turn_tokens %d, max_response_tokens %d", tc.file, r.MaxNewTokens, r.MaxResponse)
		}
	}
	bad := DefaultConfig()
	if err := LoadConfig("testdata/unknown-key.toml", &bad); err == nil {
		t.Error("an unknown key was accepted")
	}
}
