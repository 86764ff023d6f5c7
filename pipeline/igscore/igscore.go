// Package igscore computes the information-gain (IG) step reward of
// IG-Search with a policy: it builds the scoring requests of a batch of
// trajectories with pipeline/ig, tokenizes them, asks the policy for the
// log-probabilities of each gold-answer continuation, and collects the
// per-step IG. It is the model side of pipeline/ig, used by training and by
// `igsearch score-ig`.
//
// The real context and the N counterfactual contexts of a step share
// everything up to step t's observation, and the contexts of a batch share
// much more: the prompt template, a question's prompt across its samples,
// a sample's earlier steps across its later steps. With
// Options.PrefixSharing the contexts make a radix tree, scored by default
// on the CPU as paths (policy.ScoreTreeKV): each path of the tree runs
// once, as a row on the keys and values of the path it hangs off, shared
// by the rows of a run. On CUDA the default packs the tree into rows of
// the tree-scoring graph with a tree attention mask (policy.ScorePacked).
// Options.Sharing selects either, or the earlier KV forks (policy.Batch).
// Without sharing, every (context, answer) sequence is scored whole, in
// length buckets (policy.Score). All give the same IG up to float
// rounding.
package igscore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

// Options configure a Scorer; the IG settings are named as their flags.
type Options struct {
	// IG holds --ig-random, --ig-gold, --ig-counterfactual and
	// --ig-max-context.
	IG ig.Config
	// Protocol parses records whose own Protocol field is empty (logged
	// text trajectories): --protocol.
	Protocol protocol.Protocol
	// TopK is the number of documents of a corpus counterfactual (--topk).
	TopK int
	// MaxObsTokens truncates corpus counterfactual observations like the
	// rollout's (--max-obs-tokens; 0: no limit).
	MaxObsTokens int
	// PrefixSharing scores the contexts as a prefix tree, every prefix
	// they share once (Sharing says how), instead of every sequence whole.
	PrefixSharing bool
	// Sharing is how PrefixSharing shares prefixes: SharingKV,
	// SharingPacked or SharingFork; "" is DefaultSharing for the policy's
	// device. A policy opened from an ONNX folder has no tree-scoring
	// graphs and always forks.
	Sharing string
	// PackTokens is the size, in tokens, that a packed row is filled to
	// (SharingPacked; 0: DefaultPackTokens). Each token of a row attends
	// over the whole row (masked), so larger rows cost more per token,
	// while smaller ones repeat the prefix a row shares with the one
	// before it more often.
	PackTokens int
	// Workers is how many parts of a batch are scored at once, each on its
	// own runs of the policy (0: 2 on the CPU, 1 on CUDA). ONNX Runtime
	// spreads one run of a small model poorly over the cores; on the
	// 2-core development machine, two at once make score-ig 1.3× faster on
	// the demo's rollouts. Each part holds its own KV caches, so memory
	// grows with Workers. With prefix sharing the log-probs do not depend
	// on it; scoring whole sequences, it changes their length buckets,
	// which can move them by float rounding.
	Workers int
}

// DefaultOptions returns the flag defaults: ig.DefaultConfig, search-r1,
// top-3, no prefix sharing.
func DefaultOptions() Options {
	return Options{IG: ig.DefaultConfig(), Protocol: protocol.SearchR1(), TopK: 3}
}

// Stats describes one Score call.
type Stats struct {
	// Requests is the number of (context, gold) log-probabilities, Steps
	// the scored (item, step) pairs.
	Requests int `json:"requests"`
	Steps    int `json:"steps"`
	// Tokens is the number of tokens the model ran over: whole sequences
	// without prefix sharing; with it, shared prefixes once per packed row
	// (or per forked tree), plus suffixes. Padding is not counted.
	Tokens int `json:"tokens"`
	// Attended sums, over those tokens, the tokens before each in its
	// sequence: Attended/Tokens is the mean context a token attends to.
	Attended int64 `json:"attended"`
	// Time is the wall-clock time of the model calls.
	Time time.Duration `json:"time_ns"`
}

// Scorer computes IG with one policy. It is not safe for concurrent use.
type Scorer struct {
	pol  *policy.Policy
	tok  *tokenize.Tokenizer
	ix   *index.Index
	opts Options
}

// New returns a Scorer over pol (the rollout policy π_old) and tok (the
// tokenizer the contexts are encoded with; nil uses the policy's). ix is
// the in-process index, needed only for the corpus counterfactual.
func New(pol *policy.Policy, tok *tokenize.Tokenizer, ix *index.Index, opts Options) (*Scorer, error) {
	if tok == nil {
		tok = pol.Tokenizer()
	}
	if tok == nil {
		return nil, fmt.Errorf("igscore: no tokenizer")
	}
	if opts.IG.Counterfactual == ig.CounterfactualCorpus && ix == nil {
		return nil, fmt.Errorf("igscore: --ig-counterfactual corpus needs the index (--index)")
	}
	if opts.Protocol.Name == "" {
		opts.Protocol = protocol.SearchR1()
	}
	if opts.TopK <= 0 {
		opts.TopK = 3
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
		if pol.Device().CUDA {
			opts.Workers = 1
		}
	}
	return &Scorer{pol: pol, tok: tok, ix: ix, opts: opts}, nil
}

// DrawSeed is the generator of a batch's counterfactual draws for a seed:
// PCG(seed, 0x16), as training draws them.
func DrawSeed(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x16)) }

// Score returns the IG of every search step of recs, one Result per
// record. recs is the batch the counterfactual pool is drawn from, with the
// generator DrawSeed(seed). Records with tokens are parsed from their text
// like the others; one whose recorded steps do not match its text's steps
// one to one gets no IG, so that an IG never lands on the wrong query.
func (s *Scorer) Score(ctx context.Context, recs []trajectory.Record, seed uint64) ([]ig.Result, Stats, error) {
	var st Stats
	if s.opts.PrefixSharing && s.sharing() == SharingKV && s.pol.CanScoreTreeKV() {
		// The session opens on another core while the requests are built
		// and tokenized; ScoreTreeKV waits for it and reports its error.
		opened := make(chan struct{})
		go func() {
			defer close(opened)
			s.pol.OpenTreeKV()
		}()
		defer func() { <-opened }()
	}
	items := make([]ig.Item, len(recs))
	parsed := make([]protocol.Parsed, len(recs))
	for i := range recs {
		p := s.opts.Protocol
		if name := recs[i].Protocol; name != "" {
			var err error
			if p, err = protocol.Lookup(name); err != nil {
				return nil, st, fmt.Errorf("igscore: record %q: %w", recs[i].ID, err)
			}
		}
		parsed[i] = recs[i].Parse(p)
		items[i] = ig.Item{Parsed: parsed[i], Golds: recs[i].GoldenAnswers}
		if recs[i].HasTokens() && len(parsed[i].Steps) != len(recs[i].Steps) {
			items[i].Golds = nil
		}
	}
	rng := DrawSeed(seed)
	var draw ig.DrawFunc
	switch s.opts.IG.Counterfactual {
	case ig.CounterfactualCorpus:
		draw = ig.CorpusDraws(s.opts.TopK,
			func(item, step int) []string {
				if step < len(recs[item].Steps) {
					return recs[item].Steps[step].DocIDs
				}
				return nil
			},
			s.sampleDocs(rng), s.observationBlock(s.opts.Protocol))
	default:
		draw = ig.BatchDraws(parsed, rng)
	}
	reqs, err := ig.Requests(items, s.opts.IG, draw)
	if err != nil {
		return nil, st, fmt.Errorf("igscore: %w", err)
	}
	logps, st, err := s.LogProbs(ctx, reqs)
	if err != nil {
		return nil, st, err
	}
	res, err := ig.Collect(len(items), reqs, logps)
	if err != nil {
		return nil, st, fmt.Errorf("igscore: %w", err)
	}
	return res, st, nil
}

// LogProbs returns, per request, the policy's log-probs of the
// continuation's tokens after the context's: the two texts tokenized
// separately (no special tokens added), the context left-truncated to
// IG.MaxContext tokens (ig.Tokens).
func (s *Scorer) LogProbs(ctx context.Context, reqs []ig.Request) ([][]float32, Stats, error) {
	st := Stats{Requests: len(reqs)}
	if len(reqs) == 0 {
		return nil, st, nil
	}
	all := s.sequences(reqs)
	steps := map[[2]int]bool{}
	for _, r := range reqs {
		steps[[2]int{r.Item, r.Step}] = true
	}
	st.Steps = len(steps)
	// Identical sequences (a counterfactual drawn twice, say) run once.
	index := map[string]int{}
	var seqs []sequence
	which := make([]int, len(all))
	for i, q := range all {
		key := idsKey(q.ids)
		j, ok := index[key]
		if !ok {
			j = len(seqs)
			index[key] = j
			seqs = append(seqs, q)
		}
		which[i] = j
	}
	t0 := time.Now()
	var lps [][]float32
	var w work
	var err error
	sharing := s.sharing()
	switch {
	case s.opts.PrefixSharing && sharing == SharingPacked && s.pol.CanScorePacked():
		lps, w, err = s.scorePacked(ctx, seqs)
	case s.opts.PrefixSharing && sharing == SharingKV && s.pol.CanScorePacked():
		// A float16 policy asked for KV paths gets ScoreTreeKV's error.
		lps, w, err = s.scoreKV(ctx, seqs)
	case s.opts.PrefixSharing:
		lps, w, err = s.scoreShared(ctx, seqs)
	default:
		lps, w, err = s.scoreFlat(ctx, seqs)
	}
	st.Tokens, st.Attended = w.tokens, w.attended
	st.Time = time.Since(t0)
	if err != nil {
		return nil, st, fmt.Errorf("igscore: %w", err)
	}
	out := make([][]float32, len(all))
	for i := range all {
		out[i] = lps[which[i]]
	}
	return out, st, nil
}

// sharing is the way of sharing prefixes: Options.Sharing, or the
// policy's default.
func (s *Scorer) sharing() string {
	if s.opts.Sharing != "" {
		return s.opts.Sharing
	}
	return DefaultSharing(s.pol)
}

// sequence is one request's tokens: the truncated context, then the
// continuation from Start on.
type sequence struct {
	ids   []int32
	start int
}

func (s *Scorer) sequences(reqs []ig.Request) []sequence {
	cache := map[string][]int32{}
	encode := func(text string) []int32 {
		if ids, ok := cache[text]; ok {
			return ids
		}
		ids := s.tok.Encode(text)
		cache[text] = ids
		return ids
	}
	out := make([]sequence, len(reqs))
	for i, r := range reqs {
		out[i].ids, out[i].start = ig.Tokens(encode(r.Context), encode(r.Continuation), s.opts.IG.MaxContext)
	}
	return out
}

// work counts the tokens a scoring ran and the context they attended to.
type work struct {
	tokens   int
	attended int64
}

// run adds n tokens at positions first, first+1, …; each attends to the
// tokens before it.
func (w *work) run(first, n int) {
	w.tokens += n
	w.attended += int64(n)*int64(first) + int64(n)*int64(n-1)/2
}

// scoreFlat scores every sequence whole with policy.Score, which runs them
// in buckets of similar lengths.
func (s *Scorer) scoreFlat(ctx context.Context, seqs []sequence) ([][]float32, work, error) {
	var w work
	byLength := make([]int, len(seqs))
	for i, q := range seqs {
		byLength[i] = i
		w.run(0, len(q.ids))
	}
	// Worker k takes every Workers-th sequence by length, so that each
	// gets as long a share.
	slices.SortStableFunc(byLength, func(a, b int) int { return len(seqs[a].ids) - len(seqs[b].ids) })
	parts := make([][]int, min(s.opts.Workers, len(seqs)))
	for j, i := range byLength {
		parts[j%len(parts)] = append(parts[j%len(parts)], i)
	}
	lp := make([][]float32, len(seqs))
	err := parallel(ctx, len(parts), len(parts), func(ctx context.Context, k int) error {
		ids := make([][]int32, len(parts[k]))
		for j, i := range parts[k] {
			ids[j] = seqs[i].ids
		}
		out, err := s.pol.Score(ctx, ids)
		if err != nil {
			return err
		}
		for j, i := range parts[k] {
			lp[i] = out[j]
		}
		return nil
	})
	if err != nil {
		return nil, work{}, err
	}
	out := make([][]float32, len(seqs))
	for i, q := range seqs {
		if q.start == 0 || q.start >= len(q.ids) {
			out[i] = []float32{}
			continue
		}
		// lp[t] scores token t+1, so the continuation is lp[start-1:].
		out[i] = lp[i][q.start-1:]
	}
	return out, w, nil
}

// idsKey is a map key of a token sequence.
func idsKey(ids []int32) string {
	var b strings.Builder
	b.Grow(4 * len(ids))
	for _, id := range ids {
		b.WriteByte(byte(id))
		b.WriteByte(byte(id >> 8))
		b.WriteByte(byte(id >> 16))
		b.WriteByte(byte(id >> 24))
	}
	return b.String()
}

// observationBlock formats corpus counterfactual documents like a real
// observation block of p, truncated as the rollout truncates.
func (s *Scorer) observationBlock(p protocol.Protocol) func([]protocol.Doc) string {
	if s.opts.MaxObsTokens <= 0 {
		return p.ObservationBlock
	}
	count := func(text string) int { return len(s.tok.Encode(text)) }
	return func(docs []protocol.Doc) string {
		obs := p.TruncatedObservation(docs, s.opts.MaxObsTokens, count)
		return strings.TrimSuffix(strings.TrimPrefix(obs, "\n\n"), "\n\n")
	}
}

// sampleDocs draws k random passages from the index, none of them one of
// the excluded (external) ids.
func (s *Scorer) sampleDocs(rng *rand.Rand) ig.SampleDocs {
	return func(k int, exclude []string) ([]protocol.Doc, error) {
		ex := map[string]bool{}
		for _, id := range exclude {
			ex[id] = true
		}
		var docs []protocol.Doc
		for tries := 0; len(docs) < k && tries < 4; tries++ {
			for _, id := range s.ix.RandomDocs(rng, k+len(exclude), nil) {
				d, err := s.ix.Doc(id)
				if err != nil {
					return nil, err
				}
				if ex[d.ID] {
					continue
				}
				ex[d.ID] = true
				docs = append(docs, protocol.Doc{ID: d.ID, Contents: d.Contents()})
				if len(docs) == k {
					break
				}
			}
		}
		return docs, nil
	}
}
