package policy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// SamplingParams controls how Generate picks tokens. The zero value is
// greedy decoding with no stop strings and MaxNewTokens 0 (which Generate
// rejects): set MaxNewTokens.
//
// The order of operations follows Hugging Face's logits processors:
// temperature, then top-k, then top-p, then a draw from what is left.
type SamplingParams struct {
	// MaxNewTokens bounds the tokens generated per sequence and call; a row
	// that reaches it finishes with FinishLength.
	MaxNewTokens int
	// Temperature divides the logits before sampling; 0 means greedy (argmax,
	// ties to the lowest id). The reported log-probs never use it.
	Temperature float64
	// TopK keeps the K most probable tokens; 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most probable tokens whose probability
	// reaches TopP (nucleus sampling); 0 or 1 keeps all.
	TopP float64
	// Stop lists strings that end a sequence when they appear in its decoded
	// continuation; the token that completes one is kept. They need a
	// tokenizer.
	Stop []string
	// EOS lists the token ids that end a sequence (the token is kept). Nil
	// means the model's defaults (config.json's eos_token_id, and the
	// tokenizer's <|im_end|> and <|endoftext|> when present); use an empty,
	// non-nil slice for none.
	EOS []int32
}

// validate reports parameters that cannot be honoured.
func (sp SamplingParams) validate() error {
	switch {
	case sp.MaxNewTokens <= 0:
		return fmt.Errorf("sampling: max new tokens %d must be positive", sp.MaxNewTokens)
	case sp.Temperature < 0 || math.IsNaN(sp.Temperature) || math.IsInf(sp.Temperature, 0):
		return fmt.Errorf("sampling: temperature %v must be ≥ 0 (0 is greedy)", sp.Temperature)
	case sp.TopK < 0:
		return fmt.Errorf("sampling: top-k %d must be ≥ 0 (0 keeps all)", sp.TopK)
	case sp.TopP < 0 || sp.TopP > 1 || math.IsNaN(sp.TopP):
		return fmt.Errorf("sampling: top-p %v must be in [0, 1]", sp.TopP)
	}
	for _, s := range sp.Stop {
		if s == "" {
			return fmt.Errorf("sampling: empty stop string")
		}
	}
	return nil
}

// greedy reports whether sampling reduces to argmax.
func (sp SamplingParams) greedy() bool { return sp.Temperature == 0 || sp.TopK == 1 }

// newRowRNG returns the generator of one sequence. Each sequence owns its
// generator, so what it samples does not depend on which other sequences
// share its batch.
func newRowRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// logSumExp returns log Σ exp(x), computed in float64.
func logSumExp(x []float32) float64 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	if math.IsInf(float64(m), -1) {
		return math.Inf(-1)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v - m))
	}
	return float64(m) + math.Log(s)
}

// argmax returns the index of the largest value, the lowest index on ties.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// sampler draws tokens from logits; it keeps scratch space between calls, so
// each goroutine needs its own.
type sampler struct {
	probs []float64
	idx   []int32
}

// sample picks a token from one row of logits with the given parameters
// and returns it with its log-probability under log_softmax(logits), i.e.
// before temperature, top-k and top-p (the "old log-prob" of PPO). When
// normalized, logits already are log-probabilities. cdf, when not nil, holds
// the cumulative probabilities of a normalized row; sampling at temperature
// 1 without top-k or top-p then searches it instead of exponentiating the
// row. Every non-greedy draw takes exactly one number from rng.
func (s *sampler) sample(logits []float32, normalized bool, cdf []float32, sp SamplingParams, rng *rand.Rand) (int, float32) {
	lse := 0.0
	if !normalized {
		lse = logSumExp(logits)
	}
	var tok int
	switch {
	case sp.greedy():
		tok = argmax(logits)
	case cdf != nil && sp.Temperature == 1 && (sp.TopK <= 0 || sp.TopK >= len(logits)) && (sp.TopP <= 0 || sp.TopP >= 1):
		tok = searchCDF(cdf, rng.Float64())
	default:
		tok = s.draw(logits, sp, rng.Float64())
	}
	return tok, float32(float64(logits[tok]) - lse)
}

// searchCDF returns the first index whose cumulative probability exceeds
// u times the total, skipping zero-probability tokens.
func searchCDF(cdf []float32, u float64) int {
	target := float32(u) * cdf[len(cdf)-1]
	i := sort.Search(len(cdf), func(i int) bool { return cdf[i] > target })
	return min(i, len(cdf)-1)
}

// draw samples with temperature, top-k and top-p; u is uniform in [0, 1).
func (s *sampler) draw(logits []float32, sp SamplingParams, u float64) int {
	n := len(logits)
	invT := 1 / sp.Temperature
	m := logits[argmax(logits)]
	if cap(s.probs) < n {
		s.probs = make([]float64, n)
	}
	probs := s.probs[:n]
	topK := sp.TopK
	if topK <= 0 || topK > n {
		topK = n
	}
	topP := sp.TopP
	if topP <= 0 || topP >= 1 {
		topP = 1
	}
	// Unnormalised probabilities at temperature T.
	for i, v := range logits {
		probs[i] = math.Exp(float64(v-m) * invT)
	}
	if topK == n && topP == 1 {
		return drawLinear(probs, nil, u)
	}
	// Candidates in decreasing probability. Only the head of the order
	// matters, so sort just the tokens within a factor 1e-6 of the best,
	// and fall back to all tokens when they are too few.
	cand := s.candidates(probs, 1e-6)
	if len(cand) < n && len(cand) < topK {
		// The top-k set reaches beyond the candidates, unless there is no
		// top-k and the candidates already hold the nucleus.
		total, head := 0.0, 0.0
		for _, p := range probs {
			total += p
		}
		for _, i := range cand {
			head += probs[i]
		}
		if topK < n || head < topP*total {
			cand = s.candidates(probs, 0)
		}
	}
	if len(cand) > topK {
		cand = cand[:topK]
	}
	// Top-p over the renormalised top-k distribution: keep a token while
	// the mass of the tokens ranked before it is below p.
	if topP < 1 {
		total := 0.0
		if topK == n {
			for _, p := range probs {
				total += p
			}
		} else {
			for _, i := range cand {
				total += probs[i]
			}
		}
		before := 0.0
		keep := 0
		for _, i := range cand {
			if keep > 0 && before >= topP*total {
				break
			}
			before += probs[i]
			keep++
		}
		cand = cand[:keep]
	}
	return drawLinear(probs, cand, u)
}

// candidates returns the indices with probs[i] ≥ rel·max(probs), sorted by
// decreasing probability, ties by increasing index.
func (s *sampler) candidates(probs []float64, rel float64) []int32 {
	pmax := 0.0
	for _, p := range probs {
		pmax = max(pmax, p)
	}
	s.idx = s.idx[:0]
	for i, p := range probs {
		if p >= rel*pmax {
			s.idx = append(s.idx, int32(i))
		}
	}
	slices.SortFunc(s.idx, func(a, b int32) int {
		switch {
		case probs[a] > probs[b]:
			return -1
		case probs[a] < probs[b]:
			return 1
		}
		return int(a - b)
	})
	return s.idx
}

// drawLinear walks the cumulative distribution of probs (restricted to cand
// when it is non-nil) to u·total.
func drawLinear(probs []float64, cand []int32, u float64) int {
	total := 0.0
	if cand == nil {
		for _, p := range probs {
			total += p
		}
	} else {
		for _, i := range cand {
			total += probs[i]
		}
	}
	target := u * total
	acc := 0.0
	if cand == nil {
		last := 0
		for i, p := range probs {
			if p == 0 {
				continue
			}
			acc += p
			last = i
			if acc > target {
				return i
			}
		}
		return last
	}
	for _, i := range cand {
		acc += probs[i]
		if acc > target {
			return int(i)
		}
	}
	return int(cand[len(cand)-1])
}
