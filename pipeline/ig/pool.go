package ig

import (
	"fmt"
	"math/rand/v2"

	"github.com/igsearch/igsearch/pipeline/protocol"
)

// Pool is the batch-wide set of counterfactual pairs for
// --ig-counterfactual batch. Duplicates are kept, as in the reference, so a
// pair that occurs twice is drawn twice as often.
type Pool []Pair

// NewPool collects, in batch order, the pair of every step whose
// observation holds at least protocol.MinObsChars characters inside its
// tags.
func NewPool(batch []protocol.Parsed) Pool {
	var p Pool
	for _, t := range batch {
		for _, s := range t.Steps {
			if s.HasObservation(t.Protocol) {
				p = append(p, StepPair(s))
			}
		}
	}
	return p
}

// Draw returns n counterfactual pairs for a step whose real pair is own:
// the candidates are the pool's pairs not textually equal to own (both
// blocks compared), or the whole pool if that leaves none; n are drawn
// without replacement when there are at least n candidates, else with
// replacement. It returns nil for an empty pool or n <= 0.
func (p Pool) Draw(own Pair, n int, rng *rand.Rand) []Pair {
	if len(p) == 0 || n <= 0 {
		return nil
	}
	cand := make([]Pair, 0, len(p))
	for _, q := range p {
		if q != own {
			cand = append(cand, q)
		}
	}
	if len(cand) == 0 {
		cand = append(cand, p...)
	}
	out := make([]Pair, n)
	if len(cand) >= n {
		// Partial Fisher–Yates: the first n of a random permutation.
		for i := range n {
			j := i + rng.IntN(len(cand)-i)
			cand[i], cand[j] = cand[j], cand[i]
			out[i] = cand[i]
		}
		return out
	}
	for i := range out {
		out[i] = cand[rng.IntN(len(cand))]
	}
	return out
}

// DrawFunc returns the n counterfactual pairs for step `step` of item
// `item` of a batch. Requests calls it once per scored step, in order, so a
// seeded source is reproducible.
type DrawFunc func(item, step, n int) ([]Pair, error)

// BatchDraws is the DrawFunc of --ig-counterfactual batch: draws from the
// batch's pool (NewPool(batch)) with the given seeded generator.
func BatchDraws(batch []protocol.Parsed, rng *rand.Rand) DrawFunc {
	pool := NewPool(batch)
	return func(item, step, n int) ([]Pair, error) {
		return pool.Draw(StepPair(batch[item].Steps[step]), n, rng), nil
	}
}

// SampleDocs returns k documents drawn at random from the corpus, none of
// whose ids is in exclude (the index's RandomDocs, wrapped by the caller).
type SampleDocs func(k int, exclude []string) ([]protocol.Doc, error)

// CorpusDraws is the DrawFunc of --ig-counterfactual corpus: each of the n
// pairs is k random documents, excluding the ids the step actually
// retrieved (retrieved(item, step); nil when unknown), formatted by block
// like a real observation block — protocol.Protocol.ObservationBlock, or a
// truncating variant when --max-obs-tokens applies — with no refine block.
func CorpusDraws(k int, retrieved func(item, step int) []string, sample SampleDocs, block func([]protocol.Doc) string) DrawFunc {
	return func(item, step, n int) ([]Pair, error) {
		var exclude []string
		if retrieved != nil {
			exclude = retrieved(item, step)
		}
		out := make([]Pair, n)
		for j := range out {
			docs, err := sample(k, exclude)
			if err != nil {
				return nil, fmt.Errorf("ig: corpus counterfactual for item %d step %d: %w", item, step, err)
			}
			out[j] = Pair{Obs: block(docs)}
		}
		return out, nil
	}
}
