package igscore

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/pipeline/world/worldtest"
	"github.com/igsearch/igsearch/policy"
)

// tiny is the shared test setup: a small world, its index and a random
// tiny Qwen2 over the world's WordLevel vocabulary.
type tiny struct {
	world *world.World
	ix    *index.Index
	pol   *policy.Policy
	// sharp is another random tiny Qwen2 (initializer range 0.3, no bias),
	// whose log-probs depend on the context: the scorer of IG tests.
	sharp *policy.Policy
}

var (
	tinyOnce sync.Once
	tinyVal  *tiny
	tinyErr  error
	tinyDir  string
)

func setup(t testing.TB) *tiny {
	t.Helper()
	tinyOnce.Do(func() { tinyVal, tinyErr = newTiny() })
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyVal
}

func newTiny() (*tiny, error) {
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.CPU); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "igscore-test")
	if err != nil {
		return nil, err
	}
	tinyDir = dir
	f, err := worldtest.New(dir, worldtest.Questions{Train: 16, Dev: 4, Test: 4})
	if err != nil {
		return nil, err
	}
	ix, err := index.Open(f.IndexDir)
	if err != nil {
		return nil, err
	}
	w, tok, mc := f.World, f.Tokenizer, f.ModelConfig()
	words := strings.Fields(w.Train[0].GoldenAnswers[0] + " " + w.Train[1].GoldenAnswers[0])
	mdir, err := f.SaveModel("model", mc, worldtest.SearchyWeights(mc, tok, words))
	if err != nil {
		return nil, err
	}
	pol, err := policy.Open(mdir, policy.Options{Threads: 2, Tokenizer: tok, NoGraphCache: true})
	if err != nil {
		return nil, err
	}
	mc.InitializerRange = 0.3
	sdir, err := f.SaveModel("sharp", mc, qwen2.Init(mc, 2))
	if err != nil {
		return nil, err
	}
	sharp, err := policy.Open(sdir, policy.Options{Threads: 2, Tokenizer: tok, NoGraphCache: true})
	if err != nil {
		return nil, err
	}
	return &tiny{world: w, ix: ix, pol: pol, sharp: sharp}, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyVal != nil {
		tinyVal.pol.Close()
		tinyVal.sharp.Close()
		tinyVal.ix.Close()
	}
	if tinyDir != "" {
		os.RemoveAll(tinyDir)
	}
	os.Exit(code)
}

func questions(w *world.World, n int) []qa.Example {
	var out []qa.Example
	for _, q := range w.Train[:n] {
		out = append(out, qa.Example{ID: q.ID, Question: q.Question, GoldenAnswers: q.GoldenAnswers})
	}
	return out
}

// rollouts samples trajectories of the tiny policy that search.
func rollouts(t testing.TB, tn *tiny, p protocol.Protocol, nq, turns int) []trajectory.Record {
	t.Helper()
	cfg := rollout.DefaultConfig()
	cfg.Protocol, cfg.Chat, cfg.GroupSize, cfg.MaxTurns = p, false, 3, turns
	cfg.MaxNewTokens, cfg.MaxObsTokens, cfg.MaxResponse, cfg.Seed = 12, 60, 600, 3
	recs, _, err := rollout.Run(context.Background(), tn.pol, tn.ix, questions(tn.world, nq), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
