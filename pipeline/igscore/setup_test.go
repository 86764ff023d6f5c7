package igscore

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/pipeline/world/worldtest"
	"github.com/igsearch/igsearch/policy"
)

// tiny is the shared test setup: a small world, its index and a tiny
// Qwen2 that searches (worldtest.NewAgent), and the sharp scorer.
type tiny struct {
	*worldtest.Agent
	world *world.World
	ix    *index.Index
	pol   *policy.Policy
	// sharp is another random tiny Qwen2 (initializer range 0.3, no bias),
	// whose log-probs depend on the context: the scorer of IG tests.
	sharp *policy.Policy
}

var (
	shared    = worldtest.Shared{Questions: worldtest.Questions{Train: 16, Dev: 4, Test: 4}}
	sharpOnce sync.Once
	sharpPol  *policy.Policy
	sharpErr  error
)

func setup(t testing.TB) *tiny {
	t.Helper()
	a := shared.Get(t)
	sharpOnce.Do(func() {
		mc := a.ModelConfig()
		mc.InitializerRange = 0.3
		sdir, err := a.SaveModel("sharp", mc, qwen2.Init(mc, 2))
		if err != nil {
			sharpErr = err
			return
		}
		sharpPol, sharpErr = policy.Open(sdir, policy.Options{Threads: 2, Tokenizer: a.Tokenizer})
	})
	if sharpErr != nil {
		t.Fatal(sharpErr)
	}
	return &tiny{Agent: a, world: a.World, ix: a.Index, pol: a.Policy, sharp: sharpPol}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharpPol != nil {
		sharpPol.Close()
	}
	shared.Close()
	os.Exit(code)
}

// rollouts samples trajectories of the tiny policy that search.
func rollouts(t testing.TB, tn *tiny, p protocol.Protocol, nq, turns int) []trajectory.Record {
	t.Helper()
	cfg := rollout.DefaultConfig()
	cfg.Protocol, cfg.Chat, cfg.GroupSize, cfg.MaxTurns = p, false, 3, turns
	cfg.MaxNewTokens, cfg.MaxObsTokens, cfg.MaxResponse, cfg.Seed = 12, 60, 600, 3
	recs, _, err := rollout.Run(context.Background(), tn.pol, tn.ix, tn.TrainExamples(nq), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
