package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/pipeline/stats"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/trainer"
)

// iteration runs one rollout → rewards → IG → advantages → reference
// log-probs → PPO epochs, one function per phase, and returns the
// iteration's metrics.
func iteration(ctx context.Context, env *environment, cfg Config, tr *trainer.Trainer, ref reference,
	questions []qa.Example, iter, totalSteps int, say func(string)) (Metrics, error) {
	m := Metrics{Iter: iter}
	start := time.Now()
	moved := ort.MeteredTransfers()
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

	rewards, ems := outcomeRewards(env, recs, &m)

	t := time.Now()
	var igRes []ig.Result
	if cfg.IG.Algo == "ig-grpo" {
		say("ig")
		if igRes, err = informationGain(ort.WithPhase(ctx, "ig"), env, pol, recs, seed, &m); err != nil {
			return m, fmt.Errorf("ig: %w", err)
		}
	}
	m.TimeIG = time.Since(t).Seconds()
	// The rollout log carries each trajectory's reward and per-step IG.
	if err := writeRollouts(filepath.Join(cfg.Train.Out, RolloutsDir, fmt.Sprintf("iter-%05d.jsonl", iter)), recs); err != nil {
		return m, err
	}

	adv, err := advantages(env, cfg, recs, rewards, ems, igRes, &m)
	if err != nil {
		return m, err
	}

	t = time.Now()
	var refLP [][]float32
	if ref != nil {
		say("reference")
		if refLP, err = referenceLogprobs(ctx, ref, recs); err != nil {
			return m, fmt.Errorf("reference log-probs: %w", err)
		}
	}
	m.TimeRef = time.Since(t).Seconds()
	pol.Close()

	say("train")
	t = time.Now()
	if err := ppoEpochs(ctx, cfg, tr, recs, adv, refLP, seed, totalSteps, &m); err != nil {
		return m, err
	}
	m.Step = tr.Steps()
	m.TimeTrain = time.Since(t).Seconds()
	m.TimeTotal = time.Since(start).Seconds()
	m.Transfers = ort.MeteredTransfers().Sub(moved)
	m.TransferBytes = m.Transfers.Total().Bytes()
	if m.TimeTotal > 0 {
		m.IGShare = m.TimeIG / m.TimeTotal
	}
	return m, nil
}

// outcomeRewards scores every trajectory's answer (the outcome reward, also
// stored in its record) and its exact match, and fills the rollout metrics.
func outcomeRewards(env *environment, recs []trajectory.Record, m *Metrics) (rewards, ems []float64) {
	rewards = make([]float64, len(recs))
	var formats, searches, lengths []float64
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
	return rewards, ems
}

// informationGain scores the IG of every search step with the rollout
// policy (π_old), stores it in the records and fills the IG metrics.
func informationGain(ctx context.Context, env *environment, pol *policy.Policy, recs []trajectory.Record, seed uint64, m *Metrics) ([]ig.Result, error) {
	igRes, st, err := env.scoreIG(ctx, pol, recs, seed)
	if err != nil {
		return nil, err
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
	return igRes, nil
}

// advantages computes every token's advantage, group by group (a group is
// one rollout question's G samples), with the IG term when igRes is given,
// and the share of all-fail groups that still got a gradient.
func advantages(env *environment, cfg Config, recs []trajectory.Record, rewards, ems []float64, igRes []ig.Result, m *Metrics) ([][]float32, error) {
	advCfg, err := env.advantageConfig(cfg)
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("advantages: %w", err)
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
	return adv, nil
}

// referenceLogprobs are the reference policy's log-probs of every token of
// every trajectory, for the KL penalty: entry i scores token i (0 for the
// first).
func referenceLogprobs(ctx context.Context, ref reference, recs []trajectory.Record) ([][]float32, error) {
	seqs := make([][]int32, len(recs))
	for i := range recs {
		seqs[i] = recs[i].TokenIDs
	}
	scores, err := ref.Score(ctx, seqs)
	if err != nil {
		return nil, err
	}
	refLP := make([][]float32, len(recs))
	for i, s := range scores {
		// Score gives log p(ids[t+1] | ids[..t]) at t; per token i that is s[i-1].
		refLP[i] = append([]float32{0}, s...)
	}
	return refLP, nil
}

// ppoEpochs runs cfg.Train.PPOEpochs passes over the trajectories in
// seeded mini-batches, one optimiser step each, and averages the steps'
// metrics into m.
func ppoEpochs(ctx context.Context, cfg Config, tr *trainer.Trainer, recs []trajectory.Record, adv, refLP [][]float32, seed uint64, totalSteps int, m *Metrics) error {
	rows := make([]trainRow, len(recs))
	for i := range recs {
		var r []float32
		if refLP != nil {
			r = refLP[i]
		}
		var err error
		if rows[i], err = rowFromRecord(&recs[i], adv[i], r); err != nil {
			return err
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
				return err
			}
			if !hasMaskedToken(b) {
				continue
			}
			lr := LearningRate(cfg.Optim, int(tr.Steps())+1, totalSteps)
			tr.SetLR(lr)
			m.LR = lr
			sm, err := tr.StepContext(ctx, b)
			if err != nil {
				return err
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
	return nil
}
