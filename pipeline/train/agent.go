package train

import (
	"context"

	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
)

// rollout runs the search agent (pipeline/rollout) with the run's settings:
// group_size samples per question, or one with evaluate's group size 1.
func (e *environment) rollout(ctx context.Context, pol *policy.Policy, questions []qa.Example, seed uint64, temperature float64) ([]trajectory.Record, error) {
	recs, _, err := rollout.Run(ctx, pol, e.retr, questions, AgentConfig(e.cfg.Rollout, e.cfg.Retriever.TopK, e.proto, temperature, seed))
	return recs, err
}

// AgentConfig is the search agent's configuration (pipeline/rollout) for
// the rollout settings r, topk passages per search, protocol p, and
// sampling at temperature with seed: what training's rollouts and `igsearch
// eval` both run.
func AgentConfig(r RolloutConfig, topk int, p protocol.Protocol, temperature float64, seed uint64) rollout.Config {
	return rollout.Config{
		Protocol: p, Chat: r.Chat, GroupSize: r.GroupSize, MaxTurns: r.MaxTurns,
		TopK: topk, MaxObsTokens: r.MaxObsTokens, MaxNewTokens: r.MaxNewTokens,
		MaxResponse: r.MaxResponse, MaxContext: r.MaxContext, MicroBatch: r.MicroBatch,
		Temperature: temperature, TopP: r.TopP, SampleTopK: r.SampleTopK, Seed: seed,
	}
}
