package demo

import (
	"context"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/trajectory"
)

// warmStart runs the reduced demo's first stages (world, index, init, SFT)
// and returns a training config over them.
func warmStart(t *testing.T) (train.Config, string) {
	t.Helper()
	cfg := Reduced()
	cfg.Out = filepath.Join(t.TempDir(), "demo")
	cfg.RL.Train.Iterations = 0
	cfg.SkipGRPO = true
	cfg.IGExperts = 0
	if _, err := Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	rl := cfg.RL
	rl.Model.Path = filepath.Join(cfg.Out, "model-sft")
	rl.Retriever.Index = filepath.Join(cfg.Out, "index")
	rl.Data.Train = filepath.Join(cfg.Out, "world", "train.jsonl")
	rl.Data.Dev = filepath.Join(cfg.Out, "world", "dev.jsonl")
	rl.Train.Iterations, rl.Train.Questions = 2, 4
	rl.Train.EvalEvery, rl.Train.EvalLimit, rl.Train.CheckpointEvery = 2, 4, 1
	rl.Loss.KLBeta = 0.001
	// The resume test stops a run after iteration 1 of 1 and resumes it to
	// 2: a cosine schedule spans the run's iterations, so its first steps
	// differ between those runs by design. A constant lr keeps them equal.
	rl.Optim.Schedule = "constant"
	return rl, cfg.Out
}

// TestTrainResumeAndScoreIG runs 2 iterations of IG-GRPO on a warm-started
// tiny policy and checks that records, metrics and checkpoints are written;
// that a run resumed after iteration 1 continues from the same state
// (questions, policy, step count); and that scoring iteration 0's logged rollouts with the
// rollout policy (score-ig) reproduces the IG training computed for them.
func TestTrainResumeAndScoreIG(t *testing.T) {
	cfg, dir := warmStart(t)
	ctx := context.Background()
	full := cfg
	full.Train.Out = filepath.Join(dir, "full")
	if _, err := train.Run(ctx, full, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{train.MetricsFile, "rollouts/iter-00000.jsonl", "rollouts/iter-00001.jsonl",
		"checkpoint/config.json", "checkpoint/model.safetensors", "checkpoint/optimizer.safetensors", "checkpoint/trainer_state.json"} {
		if _, err := os.Stat(filepath.Join(full.Train.Out, f)); err != nil {
			t.Errorf("missing output %s: %v", f, err)
		}
	}
	ms, err := readMetrics(filepath.Join(full.Train.Out, train.MetricsFile))
	if err != nil || len(ms) != 2 {
		t.Fatalf("metrics: %d lines, %v", len(ms), err)
	}
	if ms[1].DevEM == nil {
		t.Error("iteration 2 has no dev evaluation")
	}

	part := cfg
	part.Train.Out = filepath.Join(dir, "part")
	part.Train.Iterations = 1
	if _, err := train.Run(ctx, part, nil); err != nil {
		t.Fatal(err)
	}
	part.Train.Iterations, part.Train.Resume = 2, true
	if _, err := train.Run(ctx, part, nil); err != nil {
		t.Fatal(err)
	}
	// Resume must restore everything: the data position, the sampler, the
	// policy and the optimizer. Iteration 1 then samples the same tokens with
	// the same old log-probs, and the final weights are equal to the bit.
	fr := readRecords(t, filepath.Join(full.Train.Out, train.RolloutsDir, "iter-00001.jsonl"))
	pr := readRecords(t, filepath.Join(part.Train.Out, train.RolloutsDir, "iter-00001.jsonl"))
	if len(fr) != len(pr) {
		t.Fatalf("iteration 1: %d vs %d trajectories", len(fr), len(pr))
	}
	for i := range fr {
		if fr[i].ID != pr[i].ID || fr[i].Sample != pr[i].Sample {
			t.Fatalf("iteration 1 record %d: question %s/%d after resume, %s/%d uninterrupted", i, pr[i].ID, pr[i].Sample, fr[i].ID, fr[i].Sample)
		}
		if !equalIDs(fr[i].TokenIDs, pr[i].TokenIDs) {
			t.Fatalf("iteration 1 record %d: the resumed run sampled other tokens", i)
		}
		for j := range fr[i].OldLogprobs {
			if fr[i].OldLogprobs[j] != pr[i].OldLogprobs[j] {
				t.Fatalf("iteration 1 record %d token %d: old log-prob %v after resume, %v uninterrupted", i, j, pr[i].OldLogprobs[j], fr[i].OldLogprobs[j])
			}
		}
	}
	fw := readWeights(t, filepath.Join(full.Train.Out, train.CheckpointDir, "model.safetensors"))
	pw := readWeights(t, filepath.Join(part.Train.Out, train.CheckpointDir, "model.safetensors"))
	for name, a := range fw {
		b, ok := pw[name]
		if !ok || len(a) != len(b) {
			t.Fatalf("resumed checkpoint: tensor %s missing or resized", name)
		}
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("final %s[%d]: %v after resume, %v uninterrupted", name, j, b[j], a[j])
			}
		}
	}
	ms2, err := readMetrics(filepath.Join(part.Train.Out, train.MetricsFile))
	if err != nil || len(ms2) != 2 || ms2[1].Iter != 1 || ms2[1].Step != ms[1].Step {
		t.Fatalf("resumed metrics: %+v, %v", ms2, err)
	}

	recs := readRecords(t, filepath.Join(full.Train.Out, train.RolloutsDir, "iter-00000.jsonl"))
	res, err := train.ScoreDir(ctx, cfg, cfg.Model.Path, recs)
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for i, r := range recs {
		if len(r.IGSteps) != len(res[i].Steps) {
			t.Fatalf("record %d: training scored %d steps, score-ig %d", i, len(r.IGSteps), len(res[i].Steps))
		}
		for j, s := range r.IGSteps {
			if math.Abs(s.IG-res[i].Steps[j].IG) > 1e-4 {
				t.Errorf("record %d step %d: training IG %v, score-ig %v", i, j, s.IG, res[i].Steps[j].IG)
			}
			steps++
		}
	}
	if steps == 0 {
		t.Fatal("no search step was scored: the comparison is empty")
	}
	t.Logf("%d IG steps compared", steps)
}

func readWeights(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, info := range f.Tensors() {
		_, v, err := f.Float32s(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[info.Name] = append([]float32(nil), v...)
	}
	return out
}

func readRecords(t *testing.T, path string) []trajectory.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := trajectory.NewReader(f, path)
	var out []trajectory.Record
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		out = append(out, rec)
	}
	return out
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTrainRemoteRetriever runs one IG-GRPO iteration with retrieval over
// HTTP (--retriever URL, a real /retrieve server on loopback) and checks
// that it rolls out exactly what the in-process index gives: the same
// tokens, documents and IG.
func TestTrainRemoteRetriever(t *testing.T) {
	cfg, dir := warmStart(t)
	cfg.Train.Iterations, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 1, 0, 0
	ix, err := index.Open(cfg.Retriever.Index)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	srv := httptest.NewServer(index.NewServer(ix, index.ServerOptions{}))
	defer srv.Close()

	local := cfg
	local.Train.Out = filepath.Join(dir, "local")
	remote := cfg
	remote.Train.Out = filepath.Join(dir, "remote")
	remote.Retriever.Index, remote.Retriever.URL = "", srv.URL
	for _, c := range []train.Config{local, remote} {
		if _, err := train.Run(context.Background(), c, nil); err != nil {
			t.Fatal(err)
		}
	}
	lr := readRecords(t, filepath.Join(local.Train.Out, train.RolloutsDir, "iter-00000.jsonl"))
	rr := readRecords(t, filepath.Join(remote.Train.Out, train.RolloutsDir, "iter-00000.jsonl"))
	if len(lr) == 0 || len(lr) != len(rr) {
		t.Fatalf("%d local vs %d remote trajectories", len(lr), len(rr))
	}
	searches := 0
	for i := range lr {
		if !equalIDs(lr[i].TokenIDs, rr[i].TokenIDs) || len(lr[i].Steps) != len(rr[i].Steps) {
			t.Fatalf("trajectory %d differs between the local and the remote retriever", i)
		}
		for j, s := range lr[i].Steps {
			if strings.Join(s.DocIDs, ",") != strings.Join(rr[i].Steps[j].DocIDs, ",") {
				t.Fatalf("trajectory %d step %d: docs %v local, %v remote", i, j, s.DocIDs, rr[i].Steps[j].DocIDs)
			}
			searches++
		}
		for j, s := range lr[i].IGSteps {
			if s.IG != rr[i].IGSteps[j].IG {
				t.Fatalf("trajectory %d step %d: IG %v local, %v remote", i, j, s.IG, rr[i].IGSteps[j].IG)
			}
		}
	}
	if searches == 0 {
		t.Fatal("no search was made: the comparison is empty")
	}
	t.Logf("%d trajectories, %d searches over HTTP", len(lr), searches)
}
