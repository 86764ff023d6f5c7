package igscore

import (
	"context"
	"testing"

	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/rollout"
)

// BenchmarkScore compares IG scoring with and without prefix sharing on
// one rollout batch of the tiny setup (8 questions × G = 3, up to 4 search
// turns, observations up to 120 tokens):
//
//	go test ./pipeline/igscore -run '^$' -bench Score -benchtime 5x
func BenchmarkScore(b *testing.B) {
	tn := setup(b)
	cfg := rollout.DefaultConfig()
	cfg.Chat, cfg.GroupSize, cfg.MaxTurns = false, 3, 4
	cfg.MaxNewTokens, cfg.MaxObsTokens, cfg.MaxResponse, cfg.Seed = 16, 120, 1200, 11
	recs, _, err := rollout.Run(context.Background(), tn.pol, tn.ix, tn.TrainExamples(8), cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, shared := range []bool{false, true} {
		name := "flat"
		if shared {
			name = "shared"
		}
		b.Run(name, func(b *testing.B) {
			opts := DefaultOptions()
			opts.Protocol, opts.PrefixSharing = protocol.SearchR1(), shared
			sc, err := New(tn.sharp, nil, nil, opts)
			if err != nil {
				b.Fatal(err)
			}
			var st Stats
			for b.Loop() {
				_, st, err = sc.Score(context.Background(), recs, 1)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Requests), "requests")
			b.ReportMetric(float64(st.Tokens), "tokens")
		})
	}
}
