package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/igscore"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/pipeline/stats"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
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

	// The trainer: from the checkpoint when resuming, else the initial model.
	topts := trainerOptions(cfg, env.device)
	var tr *trainer.Trainer
	st := resumeState{Seed: cfg.Train.Seed}
	ckDir := filepath.Join(out, CheckpointDir)
	if cfg.Train.Resume {
		var extra json.RawMessage
		tr, extra, err = trainer.Resume(ckDir, topts)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(extra, &st); err != nil {
			tr.Close()
			return nil, fmt.Errorf("resume %s: loop state: %w", ckDir, err)
		}
		if st.Seed != cfg.Train.Seed {
			tr.Close()
			return nil, fmt.Errorf("resume %s: checkpoint has seed %d, the config %d", ckDir, st.Seed, cfg.Train.Seed)
		}
	} else {
		if tr, err = trainer.Open(cfg.Model.Path, topts); err != nil {
			return nil, err
		}
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

	// The frozen reference policy for the KL term is the initial model;
	// with LoRA that is the base with the adapters off, which the trainer
	// holds already (frozen, never updated).
	var ref *policy.Policy
	if cfg.Loss.KLBeta > 0 {
		if topts.Artifact.LoRA != nil {
			ref, err = policy.FromWeights(tr.Config, tr.Weights(), env.tok, env.policyOptions())
		} else {
			ref, err = env.policyFromDir(cfg.Model.Path)
		}
		if err != nil {
			return nil, fmt.Errorf("reference policy: %w", err)
		}
		defer ref.Close()
	}

	mlog, err := openMetrics(filepath.Join(out, MetricsFile), st.Iter)
	if err != nil {
		return nil, err
	}
	defer mlog.close()

	order := shuffled(len(questions), cfg.Train.Seed, st.Epoch)
	totalSteps := cfg.Train.Iterations * cfg.Train.PPOEpochs * stepsPerEpoch(cfg)
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
		// The next questions, reshuffling at the end of each pass.
		batch := make([]qa.Example, 0, cfg.Train.Questions)
		for len(batch) < cfg.Train.Questions {
			if st.Cursor >= len(order) {
				st.Epoch++
				st.Cursor = 0
				order = shuffled(len(questions), cfg.Train.Seed, st.Epoch)
			}
			batch = append(batch, questions[order[st.Cursor]])
			st.Cursor++
		}
		m, err := iteration(ctx, env, cfg, tr, ref, batch, iter, totalSteps, say)
		if err != nil {
			return sum, fmt.Errorf("iteration %d: %w", iter, err)
		}
		st.Iter = iter + 1
		if cfg.Train.EvalEvery > 0 && (iter+1)%cfg.Train.EvalEvery == 0 && cfg.Data.Dev != "" {
			say("eval")
			pol, err := env.policyFromWeights(tr)
			if err != nil {
				return sum, err
			}
			res, err := Evaluate(ctx, env, pol, cfg.Data.Dev, cfg.Train.EvalLimit, cfg)
			pol.Close()
			if err != nil {
				return sum, fmt.Errorf("iteration %d: eval: %w", iter, err)
			}
			em := res.Overall.EM
			m.DevEM, m.DevBySource = &em, res.BySource
		}
		if err := mlog.write(m); err != nil {
			return sum, err
		}
		sum.Iterations, sum.Last = iter+1, m
		last := iter+1 == cfg.Train.Iterations
		if last || (cfg.Train.CheckpointEvery > 0 && (iter+1)%cfg.Train.CheckpointEvery == 0) {
			say("checkpoint")
			extra, _ := json.Marshal(st)
			if err := tr.Save(ckDir, extra); err != nil {
				return sum, err
			}
			if tok := env.tokenizerPath; tok != "" {
				if err := copyFile(tok, filepath.Join(ckDir, "tokenizer.json")); err != nil {
					return sum, err
				}
			}
		}
	}
	return sum, nil
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

// iteration runs one rollout → rewards → IG → advantages → reference
// log-probs → PPO epochs.
func iteration(ctx context.Context, env *environment, cfg Config, tr *trainer.Trainer, ref *policy.Policy,
	questions []qa.Example, iter, totalSteps int, say func(string)) (Metrics, error) {
	m := Metrics{Iter: iter}
	start := time.Now()
	seed := IterationSeed(cfg.Train.Seed, iter)

	say("rollout")
	pol, err := env.policyFromWeights(tr)
	if err != nil {
		return m, err
	}
	defer pol.Close()
	recs, err := env.rollout(ctx, pol, questions, seed, cfg.Rollout.Temperature)
	if err != nil {
		return m, fmt.Errorf("rollout: %w", err)
	}
	m.TimeRollout = time.Since(start).Seconds()

	// Outcome rewards.
	rewards := make([]float64, len(recs))
	var ems, formats, searches, lengths []float64
	for i := range recs {
		r := &recs[i]
		rewards[i] = reward.Outcome(env.rewardCfg, env.proto, r.Response, r.GoldenAnswers)
		rw := rewards[i]
		r.Reward = &rw
		ans, _ := reward.ExtractAnswer(r.Response)
		ems = append(ems, reward.EM(ans, r.GoldenAnswers))
		formats = append(formats, b2f(reward.ValidFormat(env.proto, r.Response)))
		searches = append(searches, float64(len(r.Steps)))
		lengths = append(lengths, float64(len(r.TokenIDs)-r.PromptLen))
	}
	m.Reward, _ = stats.MeanStd(rewards)
	m.EM, _ = stats.MeanStd(ems)
	m.FormatRate, _ = stats.MeanStd(formats)
	m.Searches, _ = stats.MeanStd(searches)
	m.ResponseLength, _ = stats.MeanStd(lengths)

	// Information gain per search step, from the rollout policy (π_old).
	t := time.Now()
	var igRes []ig.Result
	if cfg.IG.Algo == "ig-grpo" {
		say("ig")
		var st igscore.Stats
		igRes, st, err = env.scoreIG(ctx, pol, recs, seed)
		if err != nil {
			return m, fmt.Errorf("ig: %w", err)
		}
		m.IGTokens = st.Tokens
		if st.Tokens > 0 {
			m.IGContext = float64(st.Attended) / float64(st.Tokens)
		}
		var all []float64
		pos := 0
		for i, res := range igRes {
			recs[i].IGSteps = res.Steps
			mean := res.Mean
			recs[i].IGMean = &mean
			for _, s := range res.Steps {
				all = append(all, s.IG)
				if s.IG > 0 {
					pos++
				}
			}
		}
		m.IGMean, m.IGStd = stats.MeanStd(all)
		m.IGSteps = len(all)
		if len(all) > 0 {
			m.IGPosRatio = float64(pos) / float64(len(all))
		}
	}
	m.TimeIG = time.Since(t).Seconds()
	// The rollout log carries each trajectory's reward and per-step IG.
	if err := writeRollouts(filepath.Join(cfg.Train.Out, RolloutsDir, fmt.Sprintf("iter-%05d.jsonl", iter)), recs); err != nil {
		return m, err
	}

	// Advantages, group by group (a group is one question's G samples).
	advCfg, err := env.advantageConfig(cfg)
	if err != nil {
		return m, err
	}
	adv := make([][]float32, len(recs))
	groups := groupIndices(recs)
	allFail, allFailGrad := 0, 0
	for _, idx := range groups {
		samples := make([]advantage.Sample, len(idx))
		fail := true
		for j, i := range idx {
			samples[j] = advantage.Sample{Reward: rewards[i], Mask: recs[i].LossMask(), Steps: recs[i].AdvantageSpans()}
			if igRes != nil {
				for _, s := range igRes[i].Steps {
					samples[j].IG = append(samples[j].IG, advantage.StepValue{Step: s.Step, Value: s.IG})
				}
			}
			if ems[i] > 0 {
				fail = false
			}
		}
		a, err := advantage.Group(advCfg, samples)
		if err != nil {
			return m, fmt.Errorf("advantages: %w", err)
		}
		nonzero := false
		for j, i := range idx {
			adv[i] = a[j]
			for _, x := range a[j] {
				if x != 0 {
					nonzero = true
				}
			}
		}
		if fail {
			allFail++
			if nonzero {
				allFailGrad++
			}
		}
	}
	if len(groups) > 0 {
		m.AllFailGroups = float64(allFail) / float64(len(groups))
	}
	if allFail > 0 {
		m.AllFailWithGradient = float64(allFailGrad) / float64(allFail)
	}

	// Reference log-probs for the KL penalty.
	t = time.Now()
	var refLP [][]float32
	if ref != nil {
		say("reference")
		seqs := make([][]int32, len(recs))
		for i := range recs {
			seqs[i] = recs[i].TokenIDs
		}
		scores, err := ref.Score(ctx, seqs)
		if err != nil {
			return m, fmt.Errorf("reference log-probs: %w", err)
		}
		refLP = make([][]float32, len(recs))
		for i, s := range scores {
			// Score gives log p(ids[t+1] | ids[..t]) at t; per token i that is s[i-1].
			refLP[i] = append([]float32{0}, s...)
		}
	}
	m.TimeRef = time.Since(t).Seconds()
	pol.Close()

	// PPO epochs over mini-batches.
	say("train")
	t = time.Now()
	rows := make([]trainRow, len(recs))
	for i := range recs {
		var r []float32
		if refLP != nil {
			r = refLP[i]
		}
		if rows[i], err = rowFromRecord(&recs[i], adv[i], r); err != nil {
			return m, err
		}
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var stepMetrics []trainer.Metrics
	for epoch := 0; epoch < cfg.Train.PPOEpochs; epoch++ {
		perm := rng.Perm(len(rows))
		mb := cfg.Train.MiniBatch
		if mb <= 0 || mb > len(rows) {
			mb = len(rows)
		}
		for lo := 0; lo < len(perm); lo += mb {
			var part []trainRow
			for _, i := range perm[lo:min(lo+mb, len(perm))] {
				part = append(part, rows[i])
			}
			b, err := assemble(part)
			if err != nil {
				return m, err
			}
			if !hasMaskedToken(b) {
				continue
			}
			lr := LearningRate(cfg.Optim, int(tr.State().Step)+1, totalSteps)
			tr.SetLR(lr)
			m.LR = lr
			sm, err := tr.Step(b)
			if err != nil {
				return m, err
			}
			stepMetrics = append(stepMetrics, sm)
		}
	}
	for _, sm := range stepMetrics {
		n := float64(len(stepMetrics))
		m.Loss += sm.Loss / n
		m.KL += sm.ApproxKL / n
		m.ClipFraction += sm.ClipFraction / n
		m.GradNorm += sm.GradNorm / n
	}
	m.Step = tr.State().Step
	m.TimeTrain = time.Since(t).Seconds()
	m.TimeTotal = time.Since(start).Seconds()
	if m.TimeTotal > 0 {
		m.IGShare = m.TimeIG / m.TimeTotal
	}
	return m, nil
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
