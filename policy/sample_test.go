package policy

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func logs(p ...float64) []float32 {
	out := make([]float32, len(p))
	for i, x := range p {
		out[i] = float32(math.Log(x))
	}
	return out
}

// drawAt returns the token draw picks for each u.
func drawAt(t *testing.T, logits []float32, sp SamplingParams, us ...float64) []int {
	t.Helper()
	var s sampler
	out := make([]int, len(us))
	for i, u := range us {
		out[i] = s.draw(logits, sp, u)
	}
	return out
}

func TestSampleTopK(t *testing.T) {
	// probs 0.1 0.4 0.2 0.3; top-2 keeps tokens 1 (4/7) and 3 (3/7), in
	// that order.
	l := logs(0.1, 0.4, 0.2, 0.3)
	sp := SamplingParams{Temperature: 1, TopK: 2}
	got := drawAt(t, l, sp, 0, 0.57, 0.572, 0.999)
	if want := []int{1, 1, 3, 3}; !slices.Equal(got, want) {
		t.Errorf("top-k 2 draws %v, want %v", got, want)
	}
	// Without top-k the walk is in index order over all four.
	got = drawAt(t, l, SamplingParams{Temperature: 1}, 0.05, 0.15, 0.45, 0.55, 0.75)
	if want := []int{0, 1, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("plain draws %v, want %v", got, want)
	}
}

func TestSampleTopPBoundary(t *testing.T) {
	// Uniform over 4: the mass before token 2 is exactly 0.5, so top-p 0.5
	// keeps tokens 0 and 1 only (as Hugging Face's TopPLogitsWarper does).
	l := []float32{0, 0, 0, 0}
	got := drawAt(t, l, SamplingParams{Temperature: 1, TopP: 0.5}, 0, 0.49, 0.51, 0.999)
	if want := []int{0, 0, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("top-p 0.5 draws %v, want %v", got, want)
	}
	// Just above the boundary, token 2 joins: thirds.
	got = drawAt(t, l, SamplingParams{Temperature: 1, TopP: 0.5000001}, 0.32, 0.34, 0.65, 0.67)
	if want := []int{0, 1, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("top-p 0.5+ draws %v, want %v", got, want)
	}
	// probs 0.5 0.25 0.125 0.125 (ranked 0, 1, 2, 3): top-p 0.7 keeps 0
	// and 1 (2/3, 1/3); the most probable token is always kept.
	l = logs(0.125, 0.5, 0.125, 0.25)
	got = drawAt(t, l, SamplingParams{Temperature: 1, TopP: 0.7}, 0.6, 0.7)
	if want := []int{1, 3}; !slices.Equal(got, want) {
		t.Errorf("top-p 0.7 draws %v, want %v", got, want)
	}
	got = drawAt(t, l, SamplingParams{Temperature: 1, TopP: 0.01}, 0, 0.999)
	if want := []int{1, 1}; !slices.Equal(got, want) {
		t.Errorf("top-p 0.01 draws %v, want %v", got, want)
	}
	// Top-k then top-p: top-2 renormalises to 2/3, 1/3; top-p 0.6 then keeps
	// only token 1.
	got = drawAt(t, l, SamplingParams{Temperature: 1, TopK: 2, TopP: 0.6}, 0.9)
	if want := []int{1}; !slices.Equal(got, want) {
		t.Errorf("top-k 2 top-p 0.6 draws %v, want %v", got, want)
	}
}

func TestSampleTemperature(t *testing.T) {
	// probs 1/4, 3/4. At T=0.5 they become 1/10, 9/10; at T=2, 1/(1+√3)
	// and √3/(1+√3) ≈ 0.366, 0.634.
	l := logs(0.25, 0.75)
	got := drawAt(t, l, SamplingParams{Temperature: 0.5}, 0.099, 0.101)
	if want := []int{0, 1}; !slices.Equal(got, want) {
		t.Errorf("T=0.5 draws %v, want %v", got, want)
	}
	got = drawAt(t, l, SamplingParams{Temperature: 2}, 0.365, 0.367)
	if want := []int{0, 1}; !slices.Equal(got, want) {
		t.Errorf("T=2 draws %v, want %v", got, want)
	}
	// The reported log-prob ignores the temperature.
	var s sampler
	rng := newRowRNG(1)
	for range 20 {
		tok, lp := s.sample(l, false, nil, SamplingParams{Temperature: 3, TopP: 0.9}, rng)
		want := math.Log([]float64{0.25, 0.75}[tok])
		if math.Abs(float64(lp)-want) > 1e-6 {
			t.Fatalf("log-prob of %d = %v, want %v", tok, lp, want)
		}
	}
}

func TestSampleGreedy(t *testing.T) {
	var s sampler
	l := []float32{1, 3, 3, -2}
	for _, sp := range []SamplingParams{{}, {Temperature: 1, TopK: 1}} {
		tok, lp := s.sample(l, false, nil, sp, nil)
		want := 3 - logSumExp(l)
		if tok != 1 || math.Abs(float64(lp)-want) > 1e-6 {
			t.Errorf("%+v: greedy = %d, %v; want 1, %v", sp, tok, lp, want)
		}
	}
}

// naiveDraw is top-k / top-p by a full sort, the textbook way.
func naiveDraw(logits []float32, sp SamplingParams, u float64) int {
	type tp struct {
		i int
		p float64
	}
	m := float64(logits[argmax(logits)])
	all := make([]tp, len(logits))
	for i, v := range logits {
		all[i] = tp{i, math.Exp((float64(v) - m) / sp.Temperature)}
	}
	filtered := sp.TopK > 0 && sp.TopK < len(all) || sp.TopP > 0 && sp.TopP < 1
	slices.SortStableFunc(all, func(a, b tp) int {
		if !filtered { // no filter: walk in index order
			return 0
		}
		switch {
		case a.p > b.p:
			return -1
		case a.p < b.p:
			return 1
		}
		return 0
	})
	if sp.TopK > 0 && sp.TopK < len(all) {
		all = all[:sp.TopK]
	}
	total := 0.0
	for _, x := range all {
		total += x.p
	}
	if sp.TopP > 0 && sp.TopP < 1 {
		before, keep := 0.0, 0
		for _, x := range all {
			if keep > 0 && before >= sp.TopP*total {
				break
			}
			before += x.p
			keep++
		}
		all = all[:keep]
		total = 0
		for _, x := range all {
			total += x.p
		}
	}
	acc := 0.0
	for _, x := range all {
		acc += x.p
		if acc > u*total {
			return x.i
		}
	}
	return all[len(all)-1].i
}

func TestSampleMatchesFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var s sampler
	for trial := range 40 {
		n := 50 + r.IntN(3000)
		l := make([]float32, n)
		scale := []float64{0.5, 3, 20}[trial%3] // flat to peaked
		for i := range l {
			l[i] = float32(r.NormFloat64() * scale)
		}
		sp := SamplingParams{Temperature: 0.3 + r.Float64()*1.5}
		switch trial % 4 {
		case 0:
			sp.TopK = 1 + r.IntN(n)
		case 1:
			sp.TopP = r.Float64()
		case 2:
			sp.TopK, sp.TopP = 1+r.IntN(100), r.Float64()
		}
		for range 20 {
			u := r.Float64()
			if got, want := s.draw(l, sp, u), naiveDraw(l, sp, u); got != want {
				t.Fatalf("trial %d n=%d %+v u=%v: draw %d, full sort %d", trial, n, sp, u, got, want)
			}
		}
	}
}

func TestSampleFrequencies(t *testing.T) {
	// Seeded draws follow the distribution and repeat with the seed.
	l := logs(0.1, 0.4, 0.2, 0.3)
	sp := SamplingParams{Temperature: 1, TopK: 3}
	var s sampler
	count := make([]int, 4)
	rng := newRowRNG(42)
	var first []int
	const n = 20000
	for i := range n {
		tok, _ := s.sample(l, false, nil, sp, rng)
		count[tok]++
		if i < 50 {
			first = append(first, tok)
		}
	}
	want := []float64{0, 4.0 / 9, 2.0 / 9, 3.0 / 9}
	for i, c := range count {
		if math.Abs(float64(c)/n-want[i]) > 0.015 {
			t.Errorf("token %d: frequency %.4f, want %.4f", i, float64(c)/n, want[i])
		}
	}
	rng = newRowRNG(42)
	for i := range 50 {
		if tok, _ := s.sample(l, false, nil, sp, rng); tok != first[i] {
			t.Fatalf("draw %d with the same seed: %d, first time %d", i, tok, first[i])
		}
	}
}

func TestSamplingParamsValidate(t *testing.T) {
	bad := []SamplingParams{
		{},
		{MaxNewTokens: 1, Temperature: -1},
		{MaxNewTokens: 1, TopK: -1},
		{MaxNewTokens: 1, TopP: 1.5},
		{MaxNewTokens: 1, Stop: []string{""}},
	}
	for _, sp := range bad {
		if sp.validate() == nil {
			t.Errorf("%+v: no error", sp)
		}
	}
	if err := (SamplingParams{MaxNewTokens: 4, Temperature: 0.7, TopP: 0.9, TopK: 20}).validate(); err != nil {
		t.Errorf("valid params: %v", err)
	}
}

func TestStopMatcher(t *testing.T) {
	stops := []string{"</search>", "</answer>"}
	cases := []struct {
		pieces []string
		at     int // index of the piece that completes a stop, -1 for none
		stop   string
	}{
		{[]string{"<search> who", " is", " </se", "arch>", " more"}, 3, "</search>"},
		{[]string{"<", "/", "a", "n", "s", "w", "e", "r", ">"}, 8, "</answer>"},
		{[]string{"x</answer>y"}, 0, "</answer>"},
		{[]string{"</sear", "ch", "</answ"}, -1, ""},
		{[]string{"é</", "search>\n\n"}, 1, "</search>"},
		{[]string{"</search"}, -1, ""},
	}
	for _, c := range cases {
		m := newStopMatcher(stops)
		at, stop := -1, ""
		for i, p := range c.pieces {
			if s := m.feed(p); s != "" {
				at, stop = i, s
				break
			}
		}
		if at != c.at || stop != c.stop {
			t.Errorf("%q: stop %q at piece %d, want %q at %d", c.pieces, stop, at, c.stop, c.at)
		}
	}
	// Of two stops in one piece, the one that ends first wins.
	m := newStopMatcher([]string{"bc", "abcd", "zzz"})
	if s := m.feed("xabcd"); s != "bc" {
		t.Errorf("earliest-ending stop: %q, want bc", s)
	}
	if s := newStopMatcher(nil).feed("</search>"); s != "" {
		t.Errorf("no stops: %q", s)
	}
}
