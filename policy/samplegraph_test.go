package policy

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
)

// qwenVocab is Qwen2.5's vocabulary size (the lm_head's rows).
const qwenVocab = 151936

// newTestGraphSampler returns a CPU graph sampler over vocab tokens, closed
// when the test ends.
func newTestGraphSampler(t testing.TB, vocab int) *graphSampler {
	t.Helper()
	needORT(t)
	if _, err := ort.InitDefault("", ort.CPU); err != nil {
		t.Fatal(err)
	}
	gs, err := newGraphSampler(vocab, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gs.Close(); err != nil {
			t.Error(err)
		}
	})
	return gs
}

// sampleRows holds n rows of log-softmax values and their cumulative sums,
// as the forward's sampling head returns them.
type sampleRows struct {
	n, v     int
	lp, cdf  []float32
	lpT, cdT *ort.Tensor
}

// rowShape is how a row's logits are drawn.
type rowShape int

const (
	rowsNormal    rowShape = iota // logits ~ N(0, σ²), σ cycling through 0.5, 1, 2, 4
	rowsQuantized                 // the same rounded to steps of 0.5: many ties
	rowsTiedMax                   // normal, with the maximum copied to two other ids
	rowsPeaked                    // σ cycling through 3, 4, 6: a short head, as from a trained model
)

// randomRows makes n rows over v tokens: log_softmax of random logits in
// float32, and their running sum of exp in float32 (ONNX Runtime's CumSum on
// the CPU is a sequential float32 sum, like this one).
func randomRows(t testing.TB, rng *rand.Rand, n, v int, shape rowShape) *sampleRows {
	t.Helper()
	r := &sampleRows{n: n, v: v, lp: make([]float32, n*v), cdf: make([]float32, n*v)}
	logits := make([]float32, v)
	for i := range n {
		sigma := []float64{0.5, 1, 2, 4}[rng.IntN(4)]
		if shape == rowsPeaked {
			sigma = []float64{3, 4, 6}[rng.IntN(3)]
		}
		for j := range logits {
			x := rng.NormFloat64() * sigma
			if shape == rowsQuantized {
				x = math.Round(2*x) / 2
			}
			logits[j] = float32(x)
		}
		if shape == rowsTiedMax {
			best := argmax(logits)
			for range 2 {
				logits[rng.IntN(v)] = logits[best]
			}
		}
		lse := logSumExp(logits)
		row, cdf := r.lp[i*v:(i+1)*v], r.cdf[i*v:(i+1)*v]
		acc := float32(0)
		for j, x := range logits {
			row[j] = float32(float64(x) - lse)
			acc += float32(math.Exp(float64(row[j])))
			cdf[j] = acc
		}
	}
	var err error
	if r.lpT, err = ort.NewTensor([]int64{int64(n), 1, int64(v)}, r.lp); err != nil {
		t.Fatal(err)
	}
	if r.cdT, err = ort.NewTensor([]int64{int64(n), 1, int64(v)}, r.cdf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.lpT.Destroy(); r.cdT.Destroy() })
	return r
}

// agreement counts how often the graph sampler and the Go sampler agree.
type agreement struct {
	draws, tokens, lpMismatch int
	firstDiff                 string
}

// rate is the share of draws whose tokens agree.
func (a agreement) rate() float64 { return float64(a.tokens) / float64(a.draws) }

// compareSamplers samples every row with the Go sampler (each row its own
// generator, seeded seed0+i) and with gs (u drawn from a generator seeded the
// same), and counts the agreements. withCDF passes the cdf to both.
func compareSamplers(t testing.TB, gs *graphSampler, r *sampleRows, sp SamplingParams, withCDF bool, seed0 uint64, a *agreement) {
	t.Helper()
	var u []float64
	if !sp.greedy() {
		u = make([]float64, r.n)
		for i := range u {
			u[i] = newRowRNG(seed0 + uint64(i)).Float64()
		}
	}
	cdfT := r.cdT
	if !withCDF {
		cdfT = nil
	}
	toks, lps, err := gs.sample(context.Background(), r.lpT, cdfT, u, sp)
	if err != nil {
		t.Fatal(err)
	}
	var s sampler
	for i := range r.n {
		row := r.lp[i*r.v : (i+1)*r.v]
		var cdf []float32
		if withCDF {
			cdf = r.cdf[i*r.v : (i+1)*r.v]
		}
		tok, lp := s.sample(row, true, cdf, sp, newRowRNG(seed0+uint64(i)))
		a.draws++
		if int(toks[i]) != tok {
			if a.firstDiff == "" {
				a.firstDiff = fmt.Sprintf("row %d (seed %d): graph %d, Go %d", i, seed0+uint64(i), toks[i], tok)
			}
			continue
		}
		a.tokens++
		if math.Float32bits(lps[i]) != math.Float32bits(lp) {
			a.lpMismatch++
		}
	}
}

// TestSamplerKindFor checks that the graph is chosen as sampler.sample
// chooses its branch.
func TestSamplerKindFor(t *testing.T) {
	for _, c := range []struct {
		sp   SamplingParams
		cdf  bool
		want samplerKind
	}{
		{SamplingParams{}, true, samplerGreedy},
		{SamplingParams{Temperature: 0.7, TopK: 1}, true, samplerGreedy},
		{SamplingParams{Temperature: 1}, true, samplerCDF},
		{SamplingParams{Temperature: 1, TopK: 100, TopP: 1}, true, samplerCDF}, // top-k ≥ V keeps all
		{SamplingParams{Temperature: 1}, false, samplerTemperature},
		{SamplingParams{Temperature: 0.7}, true, samplerTemperature},
		{SamplingParams{Temperature: 1, TopK: 50}, true, samplerTopK},
		{SamplingParams{Temperature: 1, TopK: 200, TopP: 0.9}, true, samplerTopP},
		{SamplingParams{Temperature: 1, TopP: 0.9}, true, samplerTopP},
		{SamplingParams{Temperature: 1.3, TopP: 0.9}, false, samplerTopP},
	} {
		if got := samplerKindFor(c.sp, c.cdf, 100); got != c.want {
			t.Errorf("%+v (cdf %v): %s, want %s", c.sp, c.cdf, got, c.want)
		}
	}
}

// TestGraphSamplerExact checks that greedy and cdf sampling give the Go
// sampler's tokens and log-probs bit for bit, on every row: batches of 16
// and of 1 at V=1000, rows with tied maxima and many ties, and rows of
// Qwen2.5's vocabulary size.
func TestGraphSamplerExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name string
		sp   SamplingParams
	}{
		{"greedy", SamplingParams{}},
		{"top-k 1", SamplingParams{Temperature: 0.7, TopK: 1}},
		{"cdf", SamplingParams{Temperature: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a agreement
			for _, v := range []int{1000, qwenVocab} {
				gs := newTestGraphSampler(t, v)
				batches := []int{16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 1, 1, 1, 1, 1, 1, 1, 1}
				if v == qwenVocab {
					batches = []int{16, 1}
				}
				for b, n := range batches {
					for _, shape := range []rowShape{rowsNormal, rowsQuantized, rowsTiedMax} {
						r := randomRows(t, rng, n, v, shape)
						compareSamplers(t, gs, r, c.sp, true, uint64(1000*b+100*int(shape)), &a)
					}
				}
			}
			if a.tokens != a.draws || a.lpMismatch != 0 {
				t.Errorf("%d of %d tokens equal (first difference: %s), %d log-probs differ", a.tokens, a.draws, a.firstDiff, a.lpMismatch)
			}
			t.Logf("%d of %d rows: tokens and log-probs equal", a.tokens, a.draws)
		})
	}
}

// TestGraphSamplerGeneral compares temperature, top-k and top-p sampling
// with the Go sampler: tokens equal on at least 99.9% of the draws, and
// log-probs equal bit for bit wherever the tokens are. The rate is logged
// per setting; the graphs compute in samplerFloat.
func TestGraphSamplerGeneral(t *testing.T) {
	draws := 4000
	if testing.Short() {
		draws = 800
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		sp      SamplingParams
		withCDF bool
	}{
		{SamplingParams{Temperature: 0.7, TopK: 50, TopP: 0.9}, true},
		{SamplingParams{Temperature: 0.7, TopK: 50}, true},
		{SamplingParams{Temperature: 0.7, TopP: 0.9}, true},
		{SamplingParams{Temperature: 0.7}, true},
		{SamplingParams{Temperature: 1, TopK: 50, TopP: 0.9}, true},
		{SamplingParams{Temperature: 1, TopP: 0.5}, true},
		{SamplingParams{Temperature: 1}, false},
		{SamplingParams{Temperature: 1.3, TopP: 0.9}, true},
		{SamplingParams{Temperature: 1.3}, true},
	} {
		name := fmt.Sprintf("T%v_k%d_p%v", c.sp.Temperature, c.sp.TopK, c.sp.TopP)
		if !c.withCDF {
			name += "_nocdf"
		}
		t.Run(name, func(t *testing.T) {
			var a agreement
			gs := newTestGraphSampler(t, 1000)
			for b := 0; a.draws < draws; b++ {
				n := 16
				if b%8 == 7 {
					n = 1
				}
				r := randomRows(t, rng, n, 1000, rowShape(b%3))
				compareSamplers(t, gs, r, c.sp, c.withCDF, uint64(100*b), &a)
			}
			big := newTestGraphSampler(t, qwenVocab)
			for b := range 2 {
				r := randomRows(t, rng, 16, qwenVocab, rowsNormal)
				compareSamplers(t, big, r, c.sp, c.withCDF, uint64(1e6+100*b), &a)
			}
			if a.rate() < 0.999 || a.lpMismatch != 0 {
				t.Errorf("tokens equal on %d of %d draws (%.4f%%; first difference: %s), %d log-probs differ", a.tokens, a.draws, 100*a.rate(), a.firstDiff, a.lpMismatch)
			}
			t.Logf("tokens equal on %d of %d draws (%.3f%%)", a.tokens, a.draws, 100*a.rate())
		})
	}
}

// TestGraphSamplerTopKTies checks that top-k keeps the lower ids of a tie, as
// the Go sampler's candidates do: eight tokens share the top probability and
// top-k 3 must keep the first three.
func TestGraphSamplerTopKTies(t *testing.T) {
	const v = 64
	gs := newTestGraphSampler(t, v)
	r := &sampleRows{n: 16, v: v, lp: make([]float32, 16*v), cdf: make([]float32, 16*v)}
	for i := range r.n {
		row := r.lp[i*v : (i+1)*v]
		for j := range row {
			row[j] = -10
		}
		for j := range 8 {
			row[60-7*j] = -2 // ids 11, 18, ..., 60
		}
	}
	var err error
	if r.lpT, err = ort.NewTensor([]int64{16, 1, v}, r.lp); err != nil {
		t.Fatal(err)
	}
	defer r.lpT.Destroy()
	var a agreement
	for seed := uint64(0); seed < 40; seed++ {
		compareSamplers(t, gs, r, SamplingParams{Temperature: 1, TopK: 3}, false, 16*seed, &a)
	}
	if a.tokens != a.draws {
		t.Errorf("%d of %d tokens equal (first difference: %s)", a.tokens, a.draws, a.firstDiff)
	}
}

// TestGraphSamplerEdges feeds extreme uniforms (0, and the largest below 1,
// where rounding can leave no running sum above u times the total) and rows
// whose tail has probability 0 (log-prob −∞, as a masked vocabulary gives),
// and compares each kind with the Go functions it reproduces, called with the
// same u.
func TestGraphSamplerEdges(t *testing.T) {
	const v = 300
	gs := newTestGraphSampler(t, v)
	rng := rand.New(rand.NewPCG(9, 10))
	us := []float64{0, 0.5, 0.999999, math.Nextafter(1, 0)}
	r := randomRows(t, rng, len(us), v, rowsNormal)
	for i := range r.n {
		row, cdf := r.lp[i*v:(i+1)*v], r.cdf[i*v:(i+1)*v]
		for j := v - 40*(i+1); j < v; j++ {
			row[j] = float32(math.Inf(-1))
			cdf[j] = cdf[j-1]
		}
	}
	for _, sp := range []SamplingParams{
		{Temperature: 1},
		{Temperature: 0.7},
		{Temperature: 0.7, TopK: 280},
		{Temperature: 1.3, TopK: 50, TopP: 0.9},
		{Temperature: 1.3, TopP: 0.999999},
	} {
		toks, lps, err := gs.sample(context.Background(), r.lpT, r.cdT, us, sp)
		if err != nil {
			t.Fatal(err)
		}
		var s sampler
		for i, u := range us {
			row, cdf := r.lp[i*v:(i+1)*v], r.cdf[i*v:(i+1)*v]
			var want int
			if samplerKindFor(sp, true, v) == samplerCDF {
				want = searchCDF(cdf, u)
			} else {
				want = s.draw(row, sp, u)
			}
			if int(toks[i]) != want || lps[i] != row[want] {
				t.Errorf("%+v, u=%v: token %d (log-prob %v), want %d (%v)", sp, u, toks[i], lps[i], want, row[want])
			}
		}
	}
}

// TestGraphSamplerTopPHead checks top-p without top-k on rows whose head is
// short: the TopK of the topp graph then ranks fewer than V tokens, and the
// tokens still are the Go sampler's.
func TestGraphSamplerTopPHead(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, v := range []int{1000, qwenVocab} {
		gs := newTestGraphSampler(t, v)
		// The same graph with the TopK's K as an extra output.
		g := samplerGraph(samplerTopP, v)
		for _, nd := range g.Nodes {
			if nd.Op == "TopK" {
				g.Output("head", nd.Inputs[1])
			}
		}
		s, err := ort.NewSessionFromGraph(g, gs.so)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, sp := range []SamplingParams{{Temperature: 0.7, TopP: 0.9}, {Temperature: 1.3, TopP: 0.9}, {Temperature: 1, TopP: 0.99}} {
			var a agreement
			heads := map[int64]int{}
			for b := range 4 {
				r := randomRows(t, rng, 16, v, rowsPeaked)
				compareSamplers(t, gs, r, sp, true, uint64(100*b), &a)
				in := map[string]*ort.Tensor{sampleLogprobs: r.lpT}
				for name, x := range map[string][]float64{sampleUniform: make([]float64, 16), sampleTemperature: {sp.Temperature}, sampleTopP: {sp.TopP}} {
					x, err := samplerFloats([]int64{int64(len(x))}, x)
					if err != nil {
						t.Fatal(err)
					}
					defer x.Destroy()
					in[name] = x
				}
				out, err := s.Run(in)
				if err != nil {
					t.Fatal(err)
				}
				k, err := ort.Values[int64](out["head"])
				out.Destroy()
				if err != nil {
					t.Fatal(err)
				}
				heads[k[0]]++
			}
			if a.tokens != a.draws || a.lpMismatch != 0 {
				t.Errorf("V=%d %+v: %d of %d tokens equal (first difference: %s), %d log-probs differ", v, sp, a.tokens, a.draws, a.firstDiff, a.lpMismatch)
			}
			for k := range heads {
				if k >= int64(v) {
					t.Errorf("V=%d %+v: TopK ranked all %d tokens", v, sp, k)
				}
			}
			t.Logf("V=%d %+v: %d of %d tokens equal; heads ranked (K: batches) %v", v, sp, a.tokens, a.draws, heads)
		}
	}
}

// BenchmarkGraphSampler times one decode step's sampling of 16 rows over
// Qwen2.5's vocabulary, in the graphs (CPU, one thread) and with the Go
// sampler on the same rows: peaked rows (σ 3 to 6, a short head, closer to a
// trained model's) and flat ones (σ 0.5 to 4), where top-p must rank
// nearly the whole vocabulary in both.
func BenchmarkGraphSampler(b *testing.B) {
	const n = 16
	gs := newTestGraphSampler(b, qwenVocab)
	u := make([]float64, n)
	for i := range u {
		u[i] = newRowRNG(uint64(i)).Float64()
	}
	for _, shape := range []rowShape{rowsPeaked, rowsNormal} {
		r := randomRows(b, rand.New(rand.NewPCG(5, 6)), n, qwenVocab, shape)
		rows := map[rowShape]string{rowsPeaked: "peaked", rowsNormal: "flat"}[shape]
		for _, c := range []struct {
			name string
			sp   SamplingParams
		}{
			{"greedy", SamplingParams{}},
			{"cdf", SamplingParams{Temperature: 1}},
			{"T0.7", SamplingParams{Temperature: 0.7}},
			{"T0.7_k50_p0.9", SamplingParams{Temperature: 0.7, TopK: 50, TopP: 0.9}},
			{"T1.3_p0.9", SamplingParams{Temperature: 1.3, TopP: 0.9}},
		} {
			b.Run(rows+"/graph/"+c.name, func(b *testing.B) {
				for b.Loop() {
					if _, _, err := gs.sample(context.Background(), r.lpT, r.cdT, u, c.sp); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(rows+"/go/"+c.name, func(b *testing.B) {
				var s sampler
				rng := newRowRNG(1)
				for b.Loop() {
					for i := range n {
						s.sample(r.lp[i*qwenVocab:(i+1)*qwenVocab], true, r.cdf[i*qwenVocab:(i+1)*qwenVocab], c.sp, rng)
					}
				}
			})
		}
	}
}
