package main

import (
	"testing"

	"github.com/igsearch/igsearch/pipeline/train"
)

// TestRenamedFlagsKeepTheirOldNames: retrieval's --topk is now
// --retrieval-topk (beside the sampler's --top-k), --max-new-tokens is
// --max-turn-tokens; the old names set the same settings, deprecated, and
// --top-k stays the sampler's.
func TestRenamedFlagsKeepTheirOldNames(t *testing.T) {
	for _, c := range []struct {
		args           []string
		topk, turn, tk int
	}{
		{[]string{"--retrieval-topk", "4", "--max-turn-tokens", "7", "--top-k", "9"}, 4, 7, 9},
		{[]string{"--topk", "2", "--max-new-tokens", "5"}, 2, 5, 0},
	} {
		cfg := train.DefaultConfig()
		fs := newFlags("train")
		bindTrainFlags(fs, &cfg)
		if err := fs.Parse(c.args); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if cfg.Retriever.TopK != c.topk || cfg.Rollout.MaxNewTokens != c.turn || cfg.Rollout.SampleTopK != c.tk {
			t.Errorf("%v: retriever.topk %d, max_turn_tokens %d, top_k %d; want %d, %d, %d", c.args,
				cfg.Retriever.TopK, cfg.Rollout.MaxNewTokens, cfg.Rollout.SampleTopK, c.topk, c.turn, c.tk)
		}
	}
	for _, old := range []string{"topk", "max-new-tokens"} {
		cfg := train.DefaultConfig()
		fs := newFlags("train")
		bindTrainFlags(fs, &cfg)
		if f := fs.Lookup(old); f == nil || f.Deprecated == "" {
			t.Errorf("--%s is not a deprecated alias", old)
		}
	}
}

// TestScoreIGFlagsAreTrainsFlags: score-ig's IG flags bind the same
// settings under the same names as train's, with training's defaults
// (max_obs_tokens 512, not 0), and the old names still work.
func TestScoreIGFlagsAreTrainsFlags(t *testing.T) {
	def := train.DefaultConfig()
	g := def.IG
	topk, maxObs := def.Retriever.TopK, def.Rollout.MaxObsTokens
	fs := newFlags("score-ig")
	bindIGScoringFlags(fs, &g)
	aliasBool(fs, "prefix-sharing", "ig-prefix-sharing", &g.PrefixSharing)
	aliasInt(fs, "workers", "ig-workers", &g.Workers)
	bindPassageFlags(fs, &topk, &maxObs)
	if err := fs.Parse([]string{"--workers", "3", "--prefix-sharing=false", "--topk", "5"}); err != nil {
		t.Fatal(err)
	}
	if g.Workers != 3 || g.PrefixSharing || topk != 5 || maxObs != 512 {
		t.Errorf("workers %d, prefix sharing %v, topk %d, max obs %d; want 3, false, 5, 512", g.Workers, g.PrefixSharing, topk, maxObs)
	}
	tfs := newFlags("train")
	cfg := train.DefaultConfig()
	bindTrainFlags(tfs, &cfg)
	for _, name := range []string{"ig-random", "ig-gold", "ig-counterfactual", "ig-max-context", "ig-prefix-sharing", "ig-workers", "retrieval-topk", "max-obs-tokens"} {
		a, b := fs.Lookup(name), tfs.Lookup(name)
		if a == nil || b == nil || a.Usage != b.Usage || a.DefValue != b.DefValue {
			t.Errorf("--%s differs between score-ig (%+v) and train (%+v)", name, a, b)
		}
	}
}
