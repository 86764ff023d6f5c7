package trainer

import (
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
)

// TestFreezeEmbeddings checks ArtifactOptions.FreezeEmbeddings: after a step
// the embedding table (and with tied embeddings therefore the lm_head) is bit
// for bit unchanged, while every other weight moves; an untied lm_head
// trains.
func TestFreezeEmbeddings(t *testing.T) {
	initORT(t)
	for _, tied := range []bool{true, false} {
		cfg := qwen2.TinyConfig()
		cfg.TieWordEmbeddings = tied
		w := qwen2.Init(cfg, 11)
		tr, err := New(cfg, w, Options{
			Artifact: ArtifactOptions{Loss: LossConfig{Kind: LossSFT}, FreezeEmbeddings: true},
			Optim:    AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.art.Frozen) != 1 || tr.art.Frozen[0].Name != "model.embed_tokens.weight" {
			t.Errorf("tied=%v: frozen %v, want the embedding only", tied, tr.art.Frozen)
		}
		before := snapshot(tr.State().Params)
		if _, err := tr.Step(sftBatch(cfg)); err != nil {
			t.Fatal(err)
		}
		after := tr.State().Params
		if !slices.Equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"]) {
			t.Errorf("tied=%v: the frozen embedding changed", tied)
		}
		if _, ok := tr.State().M["model.embed_tokens.weight"]; ok {
			t.Errorf("tied=%v: the frozen embedding has optimizer state", tied)
		}
		for _, p := range qwen2.Params(cfg) {
			// k_proj's bias has an exactly zero gradient (a per-query
			// constant under the softmax) and starts at zero, so AdamW
			// leaves it at zero.
			if p.Name == "model.embed_tokens.weight" || strings.HasSuffix(p.Name, "k_proj.bias") {
				continue
			}
			if slices.Equal(after[p.Name], before[p.Name]) {
				t.Errorf("tied=%v: %s did not change", tied, p.Name)
			}
		}
		if !tied && slices.Equal(after["lm_head.weight"], before["lm_head.weight"]) {
			t.Errorf("untied lm_head did not train")
		}
		tr.Close()
	}
}
