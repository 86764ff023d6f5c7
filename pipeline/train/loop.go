package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/trainer"
)

// Output layout under Config.Train.Out.
const (
	MetricsFile   = "metrics.jsonl"
	CheckpointDir = "checkpoint" // the latest checkpoint (HF layout + optimizer)
	RolloutsDir   = "rollouts"   // rollouts/iter-NNNNN.jsonl, one record per trajectory
	ConfigFile    = "config.toml"
)

// RunKind is what a training run writes under Config.Train.Out, for
// atomicfile.Guard: a new run may replace only such a directory (with
// Overwrite). No marker: a run killed early leaves only some of its files.
var RunKind = atomicfile.Kind{
	Name: "a training run",
	Owns: func(name string) bool {
		switch name {
		case MetricsFile, CheckpointDir, RolloutsDir, ConfigFile:
			return true
		}
		return false
	},
}

// clearRun removes a replaced run's own files from out.
func clearRun(out string) error {
	for _, name := range []string{MetricsFile, CheckpointDir, RolloutsDir, ConfigFile} {
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			return fmt.Errorf("train --out %s: replacing the earlier run: %w", out, err)
		}
	}
	return nil
}

// Progress receives a line per phase of each iteration; nil is silent.
type Progress func(iter, total int, phase string)

// Summary is what a finished run reports.
type Summary struct {
	Iterations int
	Last       Metrics
	Checkpoint string
}

// resumeState is stored in the checkpoint's trainer_state.json "extra".
type resumeState struct {
	Iter   int    `json:"iter"`   // the next iteration to run
	Cursor int    `json:"cursor"` // position in the shuffled question order
	Epoch  int    `json:"epoch"`  // passes over the training questions
	Seed   uint64 `json:"seed"`
}

// Run trains the policy in cfg.Model.Path. It writes metrics.jsonl, the
// rollouts of every iteration and checkpoints under cfg.Train.Out, and with
// cfg.Train.Resume continues from the latest checkpoint there.
func Run(ctx context.Context, cfg Config, progress Progress) (*Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := cfg.Train.Out
	if !cfg.Train.Resume {
		if err := atomicfile.Guard(out, RunKind, cfg.Train.Overwrite, "--overwrite to start it again, or --resume to continue it"); err != nil {
			return nil, fmt.Errorf("train --out: %w", err)
		}
	}
	env, err := openEnv(cfg)
	if err != nil {
		return nil, err
	}
	defer env.close()

	questions, err := readQuestions(cfg.Data.Train, cfg.Data.Limit)
	if err != nil {
		return nil, err
	}
	if len(questions) == 0 {
		return nil, fmt.Errorf("train %s: no questions", cfg.Data.Train)
	}

	topts := trainerOptions(cfg, env.device)
	tr, st, err := openTrainer(cfg, topts)
	if err != nil {
		return nil, err
	}
	defer tr.Close()

	// Only now that everything opened: a new run replaces the old one's
	// files (Guard allowed it above), so they never mix.
	if !cfg.Train.Resume {
		if err := clearRun(out); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(out, RolloutsDir), 0o755); err != nil {
		return nil, err
	}
	ref, err := referencePolicy(cfg, env, tr, topts)
	if err != nil {
		return nil, err
	}
	if ref != nil {
		defer ref.Close()
	}
	mlog, err := openMetrics(filepath.Join(out, MetricsFile), st.Iter)
	if err != nil {
		return nil, err
	}
	defer mlog.close()

	order := questionOrder{questions: questions, seed: cfg.Train.Seed}
	order.shuffle(st.Epoch)
	totalSteps := cfg.Train.Iterations * cfg.Train.PPOEpochs * stepsPerEpoch(cfg)
	ckDir := filepath.Join(out, CheckpointDir)
	sum := &Summary{Checkpoint: ckDir}
	for iter := st.Iter; iter < cfg.Train.Iterations; iter++ {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		say := func(phase string) {
			if progress != nil {
				progress(iter, cfg.Train.Iterations, phase)
			}
		}
		batch := order.next(&st, cfg.Train.Questions)
		m, err := iteration(ctx, env, cfg, tr, ref, batch, iter, totalSteps, say)
		if err != nil {
			return sum, fmt.Errorf("iteration %d: %w", iter, err)
		}
		st.Iter = iter + 1
		if cfg.Train.EvalEvery > 0 && (iter+1)%cfg.Train.EvalEvery == 0 && cfg.Data.Dev != "" {
			say("eval")
			if err := evalDev(ctx, env, cfg, tr, &m); err != nil {
				return sum, fmt.Errorf("iteration %d: eval: %w", iter, err)
			}
		}
		if err := mlog.write(m); err != nil {
			return sum, err
		}
		sum.Iterations, sum.Last = iter+1, m
		last := iter+1 == cfg.Train.Iterations
		if last || (cfg.Train.CheckpointEvery > 0 && (iter+1)%cfg.Train.CheckpointEvery == 0) {
			say("checkpoint")
			if err := saveCheckpoint(env, tr, ckDir, st); err != nil {
				return sum, err
			}
		}
	}
	return sum, nil
}

// openTrainer is the trainer: from OUT/checkpoint when resuming (with the
// loop state saved there), else over the initial model.
func openTrainer(cfg Config, topts trainer.Options) (*trainer.Trainer, resumeState, error) {
	st := resumeState{Seed: cfg.Train.Seed}
	dir := cfg.Model.Path
	if cfg.Train.Resume {
		dir = filepath.Join(cfg.Train.Out, CheckpointDir)
	}
	mc, err := qwen2.LoadConfig(dir)
	if err != nil {
		return nil, st, err
	}
	if err := trainer.CheckMemory(mc, topts); err != nil {
		return nil, st, fmt.Errorf("train %s: %w", dir, err)
	}
	if !cfg.Train.Resume {
		tr, err := trainer.Open(cfg.Model.Path, topts)
		return tr, st, err
	}
	ckDir := filepath.Join(cfg.Train.Out, CheckpointDir)
	tr, extra, err := trainer.Resume(ckDir, topts)
	if err != nil {
		return nil, st, err
	}
	if err := json.Unmarshal(extra, &st); err != nil {
		tr.Close()
		return nil, st, fmt.Errorf("resume %s: loop state: %w", ckDir, err)
	}
	if st.Seed != cfg.Train.Seed {
		tr.Close()
		return nil, st, fmt.Errorf("resume %s: checkpoint has seed %d, the config %d", ckDir, st.Seed, cfg.Train.Seed)
	}
	return tr, st, nil
}

// reference scores whole sequences for the KL term: log p(ids[t+1] |
// ids[..t]) at t, as policy.Policy.Score does.
type reference interface {
	Score(ctx context.Context, seqs [][]int32) ([][]float32, error)
	Close() error
}

// loraReference is the KL reference of LoRA training: the frozen base with
// the adapters off, scored by the trainer over the weights it holds, so
// the reference costs no second copy of the model.
type loraReference struct{ tr *trainer.Trainer }

func (r loraReference) Score(ctx context.Context, seqs [][]int32) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.tr.BaseLogprobs(seqs)
}

func (loraReference) Close() error { return nil }

// referencePolicy is the frozen reference of the KL term (nil without one):
// the initial model, or with LoRA the trainer's frozen base.
func referencePolicy(cfg Config, env *environment, tr *trainer.Trainer, topts trainer.Options) (reference, error) {
	if cfg.Loss.KLBeta <= 0 {
		return nil, nil
	}
	if topts.Artifact.LoRA != nil {
		return loraReference{tr}, nil
	}
	ref, err := env.policyFromDir(cfg.Model.Path)
	if err != nil {
		return nil, fmt.Errorf("reference policy: %w", err)
	}
	return ref, nil
}

// questionOrder deals the training questions in a seeded order, reshuffled
// at the end of each pass.
type questionOrder struct {
	questions []qa.Example
	seed      uint64
	order     []int
}

func (o *questionOrder) shuffle(epoch int) { o.order = shuffled(len(o.questions), o.seed, epoch) }

// next deals n questions from the position in st, and moves it on.
func (o *questionOrder) next(st *resumeState, n int) []qa.Example {
	batch := make([]qa.Example, 0, n)
	for len(batch) < n {
		if st.Cursor >= len(o.order) {
			st.Epoch++
			st.Cursor = 0
			o.shuffle(st.Epoch)
		}
		batch = append(batch, o.questions[o.order[st.Cursor]])
		st.Cursor++
	}
	return batch
}

// evalDev evaluates the trainer's current policy on the dev questions
// into m.
func evalDev(ctx context.Context, env *environment, cfg Config, tr *trainer.Trainer, m *Metrics) error {
	pol, err := env.policyFromWeights(tr)
	if err != nil {
		return err
	}
	defer pol.Close()
	res, err := Evaluate(ctx, env, pol, cfg.Data.Dev, cfg.Train.EvalLimit, cfg)
	if err != nil {
		return err
	}
	em := res.Overall.EM
	m.DevEM, m.DevBySource = &em, res.BySource
	return nil
}

// saveCheckpoint saves the trainer with the loop state st to ckDir, with
// the tokenizer beside it.
func saveCheckpoint(env *environment, tr *trainer.Trainer, ckDir string, st resumeState) error {
	extra, _ := json.Marshal(st)
	if err := tr.Save(ckDir, extra); err != nil {
		return err
	}
	if tok := env.tokenizerPath; tok != "" {
		return copyFile(tok, filepath.Join(ckDir, "tokenizer.json"))
	}
	return nil
}

// stepsPerEpoch is the optimiser steps one PPO epoch takes.
func stepsPerEpoch(cfg Config) int {
	n := cfg.Train.Questions * cfg.Rollout.GroupSize
	if cfg.Train.MiniBatch <= 0 || cfg.Train.MiniBatch >= n {
		return 1
	}
	return (n + cfg.Train.MiniBatch - 1) / cfg.Train.MiniBatch
}

func trainerOptions(cfg Config, dev ort.Device) trainer.Options {
	micro := cfg.Train.MicroBatch
	lora, _ := cfg.trainerLoRA() // checked by Validate
	return trainer.Options{
		Artifact: trainer.ArtifactOptions{
			Loss:             cfg.trainerLoss(),
			FreezeEmbeddings: cfg.Train.FreezeEmbed,
			Entropy:          false,
			LoRA:             lora,
			Recompute:        cfg.Train.Recompute,
		},
		Optim:            cfg.trainerOptim(),
		MicroBatch:       micro,
		MicroBatchTokens: cfg.Train.MicroBatchTokens,
		Session:          ort.Options{Device: dev, IntraOpThreads: cfg.Model.Threads, LowMemory: cfg.Model.LowMemory},
	}
}

// shuffled is the question order of pass epoch: a seeded permutation.
func shuffled(n int, seed uint64, epoch int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)*0x9e3779b97f4a7c15+1))
	return rng.Perm(n)
}

func readQuestions(path string, limit int) ([]qa.Example, error) {
	r, err := qa.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return qa.ReadAll(r, limit)
}

func hasMaskedToken(b *trainer.Batch) bool {
	for _, row := range b.LossMask {
		for _, x := range row {
			if x != 0 {
				return true
			}
		}
	}
	return false
}

// groupIndices groups records into the G samples of each rollout question
// (advantage.Groups): a question drawn twice makes two groups.
func groupIndices(recs []trajectory.Record) [][]int {
	ids := make([]string, len(recs))
	samples := make([]int, len(recs))
	for i, r := range recs {
		ids[i], samples[i] = r.ID, r.Sample
	}
	groups, _ := advantage.Groups(ids, samples) // the lengths match
	return groups
}

func writeRollouts(path string, recs []trajectory.Record) error {
	w, err := trajectory.Create(path)
	if err != nil {
		return err
	}
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(dst, data)
}

var errNoRetriever = errors.New("no retriever configured")
