// Package worldtest builds the small world → index → policy setup that the
// pipeline's tests share, as net/http/httptest does for servers: a
// synthetic world written to disk, its BM25 index, and tiny random Qwen2
// checkpoints over the world's WordLevel vocabulary. It is for tests only.
package worldtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

// Questions sizes the world's question splits; the entities are always 6
// countries, 24 cities, 60 people, 12 organisations and 30 works.
type Questions struct {
	Train, Dev, Test int
}

// Fixture is a world on disk with its index: Dir/world, Dir/index, and the
// models that SaveModel adds beside them.
type Fixture struct {
	Dir       string
	World     *world.World
	WorldDir  string // corpus.jsonl, train/dev/test.jsonl, tokenizer.json, …
	IndexDir  string
	Tokenizer *tokenize.Tokenizer
}

// New generates the world (world.DefaultConfig's seed) into dir/world and
// builds its index into dir/index with one worker, so that every run gives
// the same files.
func New(dir string, q Questions) (*Fixture, error) {
	wc := world.DefaultConfig()
	wc.Countries, wc.Cities, wc.People, wc.Organisations, wc.Works = 6, 24, 60, 12, 30
	wc.Train, wc.Dev, wc.Test = q.Train, q.Dev, q.Test
	w, err := world.Generate(wc)
	if err != nil {
		return nil, fmt.Errorf("worldtest: %w", err)
	}
	f := &Fixture{Dir: dir, World: w, WorldDir: filepath.Join(dir, "world"), IndexDir: filepath.Join(dir, "index")}
	if err := w.Write(f.WorldDir); err != nil {
		return nil, fmt.Errorf("worldtest: %w", err)
	}
	if _, err := index.BuildFile(context.Background(), filepath.Join(f.WorldDir, "corpus.jsonl"), f.IndexDir, index.BuildOptions{Workers: 1}); err != nil {
		return nil, fmt.Errorf("worldtest: %w", err)
	}
	if f.Tokenizer, err = tokenize.Load(filepath.Join(f.WorldDir, "tokenizer.json")); err != nil {
		return nil, fmt.Errorf("worldtest: %w", err)
	}
	return f, nil
}

// ModelConfig is qwen2.TinyConfig over the world's vocabulary, with token 0
// as BOS and EOS.
func (f *Fixture) ModelConfig() qwen2.Config {
	mc := qwen2.TinyConfig()
	mc.VocabSize = f.Tokenizer.VocabSize()
	mc.BOSTokenID, mc.EOSTokenIDs = 0, []int64{0}
	return mc
}

// SaveModel writes a checkpoint with weights w to Dir/name, with the
// world's tokenizer.json beside it, and returns its directory.
func (f *Fixture) SaveModel(name string, mc qwen2.Config, w qwen2.Weights) (string, error) {
	dir := filepath.Join(f.Dir, name)
	if err := qwen2.Save(dir, mc, w, 0); err != nil {
		return "", fmt.Errorf("worldtest: %w", err)
	}
	tok, err := os.ReadFile(filepath.Join(f.WorldDir, "tokenizer.json"))
	if err != nil {
		return "", fmt.Errorf("worldtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tok, 0o644); err != nil {
		return "", fmt.Errorf("worldtest: %w", err)
	}
	return dir, nil
}

// SearchyWeights is a random tiny Qwen2 whose next-token distribution is
// biased, whatever the context, towards the protocol's tags and the given
// corpus words, so that even untrained it searches, answers and now and
// then writes stray tags. Hidden dimension 0 of every embedding is a large
// constant, which the final norm keeps near-constant, so that column 0 of
// lm_head acts as a per-token bias.
func SearchyWeights(mc qwen2.Config, tok *tokenize.Tokenizer, words []string) qwen2.Weights {
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

// Agent is a Fixture with its index open and a searching policy: the
// SearchyWeights model over the world's vocabulary (Dir/model), biased
// towards the words of the first two train questions' gold answers, opened
// with 2 threads.
type Agent struct {
	*Fixture
	Index  *index.Index
	Policy *policy.Policy
}

// NewAgent builds a Fixture in dir and opens its agent. ONNX Runtime must
// be initialised.
func NewAgent(dir string, q Questions) (*Agent, error) {
	f, err := New(dir, q)
	if err != nil {
		return nil, err
	}
	ix, err := index.Open(f.IndexDir)
	if err != nil {
		return nil, fmt.Errorf("worldtest: %w", err)
	}
	mc := f.ModelConfig()
	words := strings.Fields(f.World.Train[0].GoldenAnswers[0] + " " + f.World.Train[1].GoldenAnswers[0])
	mdir, err := f.SaveModel("model", mc, SearchyWeights(mc, f.Tokenizer, words))
	if err != nil {
		ix.Close()
		return nil, err
	}
	pol, err := policy.Open(mdir, policy.Options{Threads: 2, Tokenizer: f.Tokenizer})
	if err != nil {
		ix.Close()
		return nil, fmt.Errorf("worldtest: %w", err)
	}
	return &Agent{Fixture: f, Index: ix, Policy: pol}, nil
}

// Close closes the policy and the index.
func (a *Agent) Close() {
	a.Policy.Close()
	a.Index.Close()
}

// TrainExamples are the first n train questions as QA examples.
func (f *Fixture) TrainExamples(n int) []qa.Example {
	var out []qa.Example
	for _, q := range f.World.Train[:n] {
		out = append(out, qa.Example{ID: q.ID, Question: q.Question, GoldenAnswers: q.GoldenAnswers})
	}
	return out
}

// Shared is an Agent built once per test binary, in a temporary directory,
// for the tests of a package to share; Close it in TestMain.
type Shared struct {
	Questions Questions
	once      sync.Once
	agent     *Agent
	dir       string
	err       error
}

// Get builds the agent on the first call (initialising ONNX Runtime from
// $IGSEARCH_ORT_LIB) and returns it; a failure fails t.
func (s *Shared) Get(t testing.TB) *Agent {
	t.Helper()
	s.once.Do(func() {
		if _, s.err = ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.CPU); s.err != nil {
			s.err = fmt.Errorf("%w (run `make setup`)", s.err)
			return
		}
		if s.dir, s.err = os.MkdirTemp("", "worldtest"); s.err != nil {
			return
		}
		s.agent, s.err = NewAgent(s.dir, s.Questions)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.agent
}

// Close closes the agent and removes its directory, if Get built them.
func (s *Shared) Close() {
	if s.agent != nil {
		s.agent.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
