package train

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/tokenize"
)

// tinySetup writes a small world, its index and a random tiny policy over
// the world's vocabulary, and returns a config that trains it.
func tinySetup(t *testing.T) (Config, *world.World, string) {
	t.Helper()
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.CPU); err != nil {
		t.Fatalf("%v (run `make setup`)", err)
	}
	dir := t.TempDir()
	wc := world.DefaultConfig()
	wc.Countries, wc.Cities, wc.People, wc.Organisations, wc.Works = 6, 24, 60, 12, 30
	wc.Train, wc.Dev, wc.Test = 40, 8, 8
	w, err := world.Generate(wc)
	if err != nil {
		t.Fatal(err)
	}
	wdir := filepath.Join(dir, "world")
	if err := w.Write(wdir); err != nil {
		t.Fatal(err)
	}
	if _, err := index.BuildFile(context.Background(), filepath.Join(wdir, "corpus.jsonl"), filepath.Join(dir, "index"), index.BuildOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(filepath.Join(wdir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	mc := qwen2.TinyConfig()
	mc.VocabSize = tok.VocabSize()
	mc.BOSTokenID, mc.EOSTokenIDs = 0, []int64{0}
	mdir := filepath.Join(dir, "model")
	if err := qwen2.Save(mdir, mc, qwen2.Init(mc, 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(wdir, "tokenizer.json"), filepath.Join(mdir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Model.Path = mdir
	cfg.Data.Train = filepath.Join(wdir, "train.jsonl")
	cfg.Data.Dev = filepath.Join(wdir, "dev.jsonl")
	cfg.Retriever.Index = filepath.Join(dir, "index")
	cfg.Rollout.Chat = false
	cfg.Rollout.GroupSize = 3
	cfg.Rollout.MaxNewTokens = 24
	cfg.Rollout.MaxResponse = 200
	cfg.Rollout.MaxObsTokens = 120
	cfg.Train.Out = filepath.Join(dir, "out")
	cfg.Train.Iterations = 2
	cfg.Train.Questions = 2
	cfg.Train.EvalEvery = 2
	cfg.Train.EvalLimit = 2
	cfg.Train.CheckpointEvery = 1
	cfg.Optim.LR = 1e-3
	return cfg, w, dir
}

func TestRunSmoke(t *testing.T) {
	cfg, _, _ := tinySetup(t)
	sum, err := Run(context.Background(), cfg, func(iter, total int, phase string) { t.Logf("iter %d/%d %s", iter, total, phase) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", sum.Last)
}
