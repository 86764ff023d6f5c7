package ig

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/stats"
)

// Item is one trajectory to score: its parsed text and its gold answers.
type Item struct {
	Parsed protocol.Parsed
	Golds  []string
}

// Kind tells a real context from a counterfactual one.
type Kind int

// The kinds of a Request.
const (
	Real Kind = iota
	Random
)

// String names the kind.
func (k Kind) String() string {
	if k == Random {
		return "random"
	}
	return "real"
}

// Request is one log-probability the policy must compute: the log-probs of
// Continuation's tokens after Context's tokens. The two texts are tokenized
// separately, with no special tokens, and joined by Tokens.
type Request struct {
	// Item is the index of the trajectory in the batch.
	Item int
	// Step is the index of the search step in Parsed.Steps.
	Step int
	// Gold is the index of the gold answer in Item.Golds.
	Gold int
	// Kind is Real or Random; Draw is j, the counterfactual's number (0 for
	// Real).
	Kind Kind
	Draw int
	// Context is C_t + AnswerPrefix; Continuation is the gold answer.
	Context      string
	Continuation string
	// Shared is the byte length of Context's start that every request of the
	// same (Item, Step) shares: the place to reuse a KV-cache prefix.
	Shared int
}

// Requests builds the scoring requests of a batch: for every item, every
// step whose observation holds at least protocol.MinObsChars characters,
// and every gold that cfg.Gold selects, one Real request and cfg.Random
// Random ones, in that order. draw is called once per such step, and its
// pairs are shared by all the golds of the step (the reference draws anew
// for each gold; with the default ig_gold first the two agree). Items
// without golds, and steps for which draw returns no pair (an empty pool),
// get no requests.
func Requests(items []Item, cfg Config, draw DrawFunc) ([]Request, error) {
	var out []Request
	for i, it := range items {
		golds := cfg.Gold.Select(it.Golds)
		if len(golds) == 0 {
			continue
		}
		t := it.Parsed
		for s, st := range t.Steps {
			if !st.HasObservation(t.Protocol) {
				continue
			}
			pairs, err := draw(i, s, max(cfg.Random, 1))
			if err != nil {
				return nil, err
			}
			if len(pairs) == 0 {
				continue
			}
			shared := sharedLen(t, s)
			real := Context(t, s, nil) + AnswerPrefix
			rand := make([]string, len(pairs))
			for j := range pairs {
				rand[j] = Context(t, s, &pairs[j]) + AnswerPrefix
			}
			for g, gold := range golds {
				out = append(out, Request{Item: i, Step: s, Gold: g, Kind: Real, Context: real, Continuation: gold, Shared: shared})
				for j, c := range rand {
					out = append(out, Request{Item: i, Step: s, Gold: g, Kind: Random, Draw: j, Context: c, Continuation: gold, Shared: shared})
				}
			}
		}
	}
	return out, nil
}

// Tokens joins a request's tokenized context and continuation into the
// sequence the policy scores: the context left-truncated to its last
// maxContext tokens (maxContext <= 0: no limit), then the continuation.
// answerStart is the index of the continuation's first token; its log-prob
// is predicted from position answerStart−1.
func Tokens[T any](context, continuation []T, maxContext int) (ids []T, answerStart int) {
	if maxContext > 0 && len(context) > maxContext {
		context = context[len(context)-maxContext:]
	}
	ids = make([]T, 0, len(context)+len(continuation))
	ids = append(append(ids, context...), continuation...)
	return ids, len(context)
}

// WeightedLogP is the head-weighted mean log-probability of an answer's L
// tokens: w_i = HeadWeight for i < HeadTokens, 1 after, rescaled to mean 1,
// and logP = Σ lp_i·w_i / L. It is computed as the equal Σ lp_i·w_i / Σ w_i
// (before rescaling), which rounds less. With L <= HeadTokens it is the
// plain mean; an empty answer gives 0.
func WeightedLogP[F float32 | float64](lp []F) float64 {
	if len(lp) == 0 {
		return 0
	}
	sum, sumW := 0.0, 0.0
	for i, v := range lp {
		w := 1.0
		if i < HeadTokens {
			w = HeadWeight
		}
		sum += float64(v) * w
		sumW += w
	}
	return sum / sumW
}

// StepIG is the IG of one search step, in the output row's shape.
type StepIG struct {
	// Step is the index of the search step in the response (from 0).
	Step int `json:"step"`
	// LogpReal is the weighted logP of the chosen gold under C_t^real.
	LogpReal float64 `json:"logp_real"`
	// LogpRandomMean is the mean weighted logP of that gold over the
	// counterfactual contexts.
	LogpRandomMean float64 `json:"logp_random_mean"`
	// IG is LogpReal − LogpRandomMean.
	IG float64 `json:"ig"`
}

// Result is the IG of one trajectory, in the output row's shape:
// "ig_steps" and "ig_mean".
type Result struct {
	// Steps are the scored steps in step order; skipped steps are absent.
	Steps []StepIG `json:"ig_steps"`
	// Mean is the mean IG over Steps, 0 when there are none.
	Mean float64 `json:"ig_mean"`
}

// Gain is the information gain of one search step, the paper's formula:
//
//	IG_t = logP(a* | C_t^real) − (1/N) Σ_j logP(a* | C_t^rand,j)
//
// real is the (weighted, see WeightedLogP) log-prob of the gold answer after
// the real context, random those after the N counterfactual contexts. It is
// positive when the retrieved documents made the answer more likely than
// random documents did. With no counterfactual (N = 0) it is NaN: the gain
// is undefined, and Collect skips such a step.
func Gain(real float64, random []float64) float64 {
	return real - stats.Mean(random)
}

// Collect computes the IG of every item from the answers to its requests:
// logps[r] holds the log-probs of request r's continuation tokens (in
// order, after any truncation); the requests may come in any order. For
// each (item, step) the gold with the highest real logP is kept (the lowest
// gold index on ties), and IG = logP_real − mean_j logP_rand_j over that
// gold's Random requests; a step with no Random request for that gold is
// skipped. nItems is the batch size; every item gets a Result, with its
// steps in step order.
func Collect[F float32 | float64](nItems int, reqs []Request, logps [][]F) ([]Result, error) {
	if len(logps) != len(reqs) {
		return nil, fmt.Errorf("ig: %d log-prob rows for %d requests", len(logps), len(reqs))
	}
	type gold struct {
		real    float64
		hasReal bool
		rand    []float64
	}
	type key struct{ item, step int }
	steps := map[key][]gold{}
	for r, q := range reqs {
		if q.Item < 0 || q.Item >= nItems || q.Gold < 0 {
			return nil, fmt.Errorf("ig: request %d: item %d gold %d out of range (batch of %d)", r, q.Item, q.Gold, nItems)
		}
		k := key{q.Item, q.Step}
		g := steps[k]
		for len(g) <= q.Gold {
			g = append(g, gold{})
		}
		lp := WeightedLogP(logps[r])
		if q.Kind == Real {
			g[q.Gold].real, g[q.Gold].hasReal = lp, true
		} else {
			g[q.Gold].rand = append(g[q.Gold].rand, lp)
		}
		steps[k] = g
	}
	out := make([]Result, nItems)
	for i := range out {
		out[i].Steps = []StepIG{}
	}
	for k, golds := range steps {
		best := -1
		for g, a := range golds {
			if a.hasReal && (best < 0 || a.real > golds[best].real) {
				best = g
			}
		}
		if best < 0 || len(golds[best].rand) == 0 {
			continue
		}
		real, rand := golds[best].real, golds[best].rand
		out[k.item].Steps = append(out[k.item].Steps, StepIG{Step: k.step, LogpReal: real, LogpRandomMean: stats.Mean(rand), IG: Gain(real, rand)})
	}
	for i := range out {
		slices.SortFunc(out[i].Steps, func(a, b StepIG) int { return cmp.Compare(a.Step, b.Step) })
		if n := len(out[i].Steps); n > 0 {
			s := 0.0
			for _, x := range out[i].Steps {
				s += x.IG
			}
			out[i].Mean = s / float64(n)
		}
	}
	return out, nil
}
