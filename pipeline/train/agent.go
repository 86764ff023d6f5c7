package train

import (
	"context"

	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
)

// rollout runs the search agent (pipeline/rollout) with the run's settings:
// group_size samples per question, or one with evaluate's group size 1.
func (e *environment) rollout(ctx context.Context, pol *policy.Policy, questions []qa.Example, seed uint64, temperature float64) ([]trajectory.Record, error) {
	rc := e.cfg.Rollout
	recs, _, err := rollout.Run(ctx, pol, e.retr, questions, rollout.Config{
		Protocol: e.proto, Chat: rc.Chat, GroupSize: rc.GroupSize, MaxTurns: rc.MaxTurns,
		TopK: e.cfg.Retriever.TopK, MaxObsTokens: rc.MaxObsTokens, MaxNewTokens: rc.MaxNewTokens,
		MaxResponse: rc.MaxResponse, MaxContext: rc.MaxContext, MicroBatch: rc.MicroBatch, Temperature: temperature, TopP: rc.TopP, SampleTopK: rc.TopK, Seed: seed,
	})
	return recs, err
}
