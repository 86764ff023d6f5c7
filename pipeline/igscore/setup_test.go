package igscore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
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
	wc := world.DefaultConfig()
	wc.Countries, wc.Cities, wc.People, wc.Organisations, wc.Works = 6, 24, 60, 12, 30
	wc.Train, wc.Dev, wc.Test = 16, 4, 4
	w, err := world.Generate(wc)
	if err != nil {
		return nil, err
	}
	wdir := filepath.Join(dir, "world")
	if err := w.Write(wdir); err != nil {
		return nil, err
	}
	if _, err := index.BuildFile(context.Background(), filepath.Join(wdir, "corpus.jsonl"), filepath.Join(dir, "index"), index.BuildOptions{Workers: 1}); err != nil {
		return nil, err
	}
	ix, err := index.Open(filepath.Join(dir, "index"))
	if err != nil {
		return nil, err
	}
	tok, err := tokenize.Load(filepath.Join(wdir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	mc := qwen2.TinyConfig()
	mc.VocabSize = tok.VocabSize()
	mc.BOSTokenID, mc.EOSTokenIDs = 0, []int64{0}
	mdir := filepath.Join(dir, "model")
	words := strings.Fields(w.Train[0].GoldenAnswers[0] + " " + w.Train[1].GoldenAnswers[0])
	if err := qwen2.Save(mdir, mc, searchyWeights(mc, tok, words), 0); err != nil {
		return nil, err
	}
	pol, err := policy.Open(mdir, policy.Options{Threads: 2, Tokenizer: tok, NoGraphCache: true})
	if err != nil {
		return nil, err
	}
	mc.InitializerRange = 0.3
	sdir := filepath.Join(dir, "sharp")
	if err := qwen2.Save(sdir, mc, qwen2.Init(mc, 2), 0); err != nil {
		return nil, err
	}
	sharp, err := policy.Open(sdir, policy.Options{Threads: 2, Tokenizer: tok, NoGraphCache: true})
	if err != nil {
		return nil, err
	}
	return &tiny{world: w, ix: ix, pol: pol, sharp: sharp}, nil
}

// searchyWeights is a random tiny Qwen2 whose next-token distribution is
// biased, whatever the context, towards the protocol's tags and a few
// corpus words, so that even untrained it searches, answers and now and
// then writes stray tags. Hidden dimension 0 of every embedding is a large
// constant, which the final norm keeps near-constant, so that column 0 of
// lm_head acts as a per-token bias.
func searchyWeights(mc qwen2.Config, tok *tokenize.Tokenizer, words []string) qwen2.Weights {
	w := qwen2.Init(mc, 1)
	H, V := mc.HiddenSize, mc.VocabSize
	emb := w["model.embed_tokens.weight"].Floats()
	for v := range V {
		emb[v*H] = 10
	}
	w["model.embed_tokens.weight"] = onnx.FloatTensor([]int64{int64(V), int64(H)}, emb)
	bias := map[string]float32{
		"<search>": 2.5, "</search>": 2.5, "<answer>": 2, "</answer>": 2, "<think>": 1, "</think>": 1,
		"<information>": 0.3, "</information>": 0.3, "<refine>": 2, "</refine>": 2,
	}
	for _, word := range words {
		bias[word] = 3.5
	}
	head := w["lm_head.weight"].Floats()
	for v := range V {
		head[v*H] = -8.0 / 8
	}
	for s, b := range bias {
		if id, ok := tok.TokenID(s); ok {
			head[int(id)*H] = b / 8
		}
	}
	w["lm_head.weight"] = onnx.FloatTensor([]int64{int64(V), int64(H)}, head)
	return w
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
