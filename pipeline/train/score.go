package train

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/igscore"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
)

// scoreIG computes the information gain of every search step of recs under
// pol (the rollout policy, π_old) with pipeline/igscore, sharing each step's
// context prefix when ig_prefix_sharing is on. A record whose text parses
// into a different number of steps than it recorded (a model that wrote
// stray tags) gets no IG, so that IG values never land on the wrong query.
func (e *environment) scoreIG(ctx context.Context, pol *policy.Policy, recs []trajectory.Record, seed uint64) ([]ig.Result, igscore.Stats, error) {
	o := igscore.DefaultOptions()
	o.IG, o.Protocol = e.igCfg, e.proto
	o.TopK, o.MaxObsTokens = e.cfg.Retriever.TopK, e.cfg.Rollout.MaxObsTokens
	o.PrefixSharing, o.Workers = e.cfg.IG.PrefixSharing, e.cfg.IG.Workers
	if o.IG.Counterfactual == ig.CounterfactualCorpus && e.ix == nil {
		return nil, igscore.Stats{}, fmt.Errorf("ig_counterfactual corpus needs the in-process index (--index)")
	}
	sc, err := igscore.New(pol, e.tok, e.ix, o)
	if err != nil {
		return nil, igscore.Stats{}, err
	}
	batch := make([]trajectory.Record, len(recs))
	copy(batch, recs)
	for i := range batch {
		if batch[i].HasTokens() && len(batch[i].Parse(e.proto).Steps) != len(batch[i].Steps) {
			batch[i].GoldenAnswers = nil // no requests for this record
		}
	}
	return sc.Score(ctx, batch, seed)
}

// Score is one evaluation figure.
type Score struct {
	N  int     `json:"n"`
	EM float64 `json:"em"`
	F1 float64 `json:"f1"`
}

// EvalResult is EM and F1 per data_source and over all questions.
type EvalResult struct {
	BySource map[string]Score    `json:"by_source"`
	Overall  Score               `json:"overall"`
	Records  []trajectory.Record `json:"-"`
}

// NewEvalResult is an empty result, for Add.
func NewEvalResult() *EvalResult { return &EvalResult{BySource: map[string]Score{}} }

// Add scores one trajectory's final answer, EM and F1 against its gold
// answers, into its data_source's figures ("all" when it has none) and the
// overall ones. A trajectory that ended without answering scores 0.
func (r *EvalResult) Add(rec *trajectory.Record) {
	ans, _ := reward.ExtractAnswer(rec.Response)
	em, f1 := reward.EM(ans, rec.GoldenAnswers), reward.F1(ans, rec.GoldenAnswers)
	src := rec.DataSource
	if src == "" {
		src = "all"
	}
	s := r.BySource[src]
	s.add(em, f1)
	r.BySource[src] = s
	r.Overall.add(em, f1)
}

// add folds one trajectory's EM and F1 into the running means.
func (s *Score) add(em, f1 float64) {
	s.EM = (s.EM*float64(s.N) + em) / float64(s.N+1)
	s.F1 = (s.F1*float64(s.N) + f1) / float64(s.N+1)
	s.N++
}

// Table writes the result as an aligned table: data_source, n, EM, F1, and
// the average over all trajectories.
func (r *EvalResult) Table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data_source\tn\tEM\tF1\t")
	for _, src := range r.Sources() {
		v := r.BySource[src]
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t\n", src, v.N, v.EM, v.F1)
	}
	fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t\n", "average", r.Overall.N, r.Overall.EM, r.Overall.F1)
	tw.Flush()
}

// Sources lists the data sources in name order.
func (r *EvalResult) Sources() []string {
	var out []string
	for s := range r.BySource {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Evaluate runs one greedy rollout per question and scores the answers: the
// first limit questions of path (0: all), or with cfg.Train.EvalPerSource
// the first EvalPerSource of each data_source, limit capping the total.
func Evaluate(ctx context.Context, env *environment, pol *policy.Policy, path string, limit int, cfg Config) (*EvalResult, error) {
	per := cfg.Train.EvalPerSource
	readLimit := limit
	if per > 0 {
		readLimit = 0
	}
	qs, err := readQuestions(path, readLimit)
	if err != nil {
		return nil, err
	}
	if per > 0 {
		qs = PerSource(qs, per, limit)
	}
	return env.evaluate(ctx, pol, qs)
}

// PerSource keeps the first n questions of each data_source (questions
// without one count as one source), in file order, and at most limit in all
// (0: no cap). Merged test files list their sets one after the other, so
// the first rows alone would all be one set.
func PerSource(qs []qa.Example, n, limit int) []qa.Example {
	seen := map[string]int{}
	var out []qa.Example
	for _, q := range qs {
		if limit > 0 && len(out) >= limit {
			break
		}
		if seen[q.DataSource] < n {
			seen[q.DataSource]++
			out = append(out, q)
		}
	}
	return out
}

func (e *environment) evaluate(ctx context.Context, pol *policy.Policy, qs []qa.Example) (*EvalResult, error) {
	saved := e.cfg.Rollout.GroupSize
	e.cfg.Rollout.GroupSize = 1
	recs, err := e.rollout(ctx, pol, qs, 0, 0)
	e.cfg.Rollout.GroupSize = saved
	if err != nil {
		return nil, err
	}
	res := NewEvalResult()
	res.Records = recs
	for i := range recs {
		res.Add(&recs[i])
	}
	return res, nil
}

// EvalDir evaluates the checkpoint in dir on the questions in dataPath with
// cfg's protocol, retriever and rollout settings (greedy, one sample).
func EvalDir(ctx context.Context, cfg Config, dir, dataPath string, limit int) (*EvalResult, error) {
	cfg.Model.Path = dir
	env, err := openEnv(cfg)
	if err != nil {
		return nil, err
	}
	defer env.close()
	pol, err := env.policyFromDir(dir)
	if err != nil {
		return nil, err
	}
	defer pol.Close()
	return Evaluate(ctx, env, pol, dataPath, limit, cfg)
}

// Scorer computes IG for logged trajectories with one policy: the batch
// IG scoring of `igsearch score-ig`.
type Scorer struct {
	env   *environment
	pol   *policy.Policy
	seed  uint64
	chunk int
}

// NewScorer opens the checkpoint in dir with cfg's IG settings, protocol and
// retriever (needed only for ig_counterfactual corpus).
func NewScorer(cfg Config, dir string) (*Scorer, error) {
	cfg.Model.Path = dir
	if cfg.Retriever.Index == "" && cfg.Retriever.URL == "" {
		cfg.Retriever.URL = "-" // unused: batch counterfactuals need no retriever
	}
	env, err := openEnvRetriever(cfg, cfg.Retriever.URL != "-")
	if err != nil {
		return nil, err
	}
	pol, err := env.policyFromDir(dir)
	if err != nil {
		env.close()
		return nil, err
	}
	return &Scorer{env: env, pol: pol, seed: cfg.Train.Seed}, nil
}

// Score returns the IG of every search step of recs (records with tokens,
// or text-only records parsed from prompt + response). recs is the batch
// the counterfactual pool is drawn from. Chunk k draws its counterfactuals
// with IterationSeed(seed, k), as training draws iteration k's, so scoring
// one iteration's logged rollouts as one chunk reproduces training's IG.
func (s *Scorer) Score(ctx context.Context, recs []trajectory.Record) ([]ig.Result, error) {
	res, _, err := s.env.scoreIG(ctx, s.pol, recs, IterationSeed(s.seed, s.chunk))
	s.chunk++
	return res, err
}

// IterationSeed is the seed of iteration (or chunk) i of a run seeded with
// seed: it seeds the rollout's sampling and the IG counterfactual draws.
func IterationSeed(seed uint64, i int) uint64 { return seed*1_000_003 + uint64(i) }

// Close releases the policy and the retriever.
func (s *Scorer) Close() error {
	s.pol.Close()
	s.env.close()
	return nil
}

// ScoreDir scores recs as one batch under the checkpoint in dir.
func ScoreDir(ctx context.Context, cfg Config, dir string, recs []trajectory.Record) ([]ig.Result, error) {
	s, err := NewScorer(cfg, dir)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Score(ctx, recs)
}

// WriteRecords writes trajectories as JSONL, atomically.
func WriteRecords(path string, recs []trajectory.Record) error { return writeRollouts(path, recs) }

// PromptText is the prompt the rollout gives the policy for a question.
func PromptText(cfg Config, question string) (string, error) {
	p, err := protocol.Lookup(cfg.Rollout.Protocol)
	if err != nil {
		return "", err
	}
	return rollout.PromptText(p, cfg.Rollout.Chat, question), nil
}
