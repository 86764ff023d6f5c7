package train

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/pipeline/world/worldtest"
	"github.com/igsearch/igsearch/trainer"
)

// tinySetup writes a small world, its index and a random tiny policy over
// the world's vocabulary, and returns a config that trains it.
func tinySetup(t *testing.T) (Config, *world.World, string) {
	t.Helper()
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.CPU); err != nil {
		t.Fatalf("%v (run `make setup`)", err)
	}
	dir := t.TempDir()
	f, err := worldtest.New(dir, worldtest.Questions{Train: 40, Dev: 8, Test: 8})
	if err != nil {
		t.Fatal(err)
	}
	w, wdir := f.World, f.WorldDir
	mc := f.ModelConfig()
	mdir, err := f.SaveModel("model", mc, qwen2.Init(mc, 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Model.Path = mdir
	cfg.Data.Train = filepath.Join(wdir, "train.jsonl")
	cfg.Data.Dev = filepath.Join(wdir, "dev.jsonl")
	cfg.Retriever.Index = f.IndexDir
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
	// The iteration's boundary bytes, by meter phase, are in its metrics:
	// the rollout's, the train step's and, when a step was scored, IG
	// scoring's (under "ig").
	tr := sum.Last.Transfers
	if sum.Last.TransferBytes <= 0 || sum.Last.TransferBytes != tr.Total().Bytes() {
		t.Errorf("transfer_bytes %d, transfers %v", sum.Last.TransferBytes, tr)
	}
	var ig int64
	for _, p := range tr.Phases() {
		if p == "ig" || strings.HasPrefix(p, "ig/") {
			ig += tr[p].Bytes()
		}
	}
	if (ig == 0) != (sum.Last.IGSteps == 0) || tr[trainer.PhaseTrain].Bytes() == 0 || tr["decode"].Bytes() == 0 {
		t.Errorf("%d IG steps, but these transfers: %v", sum.Last.IGSteps, tr)
	}
}
