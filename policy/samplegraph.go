package policy

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// Sampling in ONNX graphs (issue 13): a small session run right after the
// forward, on the forward's logprobs and cdf outputs, so that a decode step
// hands back only token ids and log-probs instead of [n,V] rows. Each graph
// reproduces one branch of sampler.sample:
//
//	greedy       ArgMax (first maximum on ties), as argmax
//	cdf          count of cdf ≤ float32(u)·cdf[V-1], as searchCDF
//	temperature  exp((lp−max)/T) walked in vocabulary order, as drawLinear
//	topk         TopK, then top-p over the renormalised top-k mass, then a
//	             walk in rank order, as draw
//	topp         the same without top-k, ranking only a head that holds
//	             the nucleus (all V when none short enough does), as draw's
//	             candidates
//
// The graphs work in float64 where the Go sampler does (the tempered
// probabilities, their sums, u, T and p), so that the CPU path draws the same
// tokens for the same seed; see samplerFloat.

// Names of the sampler graphs' inputs and outputs. logprobs and cdf are the
// outputs of the inference graph's sampling head (qwen2.Options.SamplingHead),
// [n,1,V] float32, so that the forward's outputs feed the sampler as they are.
const (
	sampleLogprobs    = qwen2.LastLogprobs // float32 [n,1,V]: log_softmax(logits)
	sampleCDF         = qwen2.LastCDF      // float32 [n,1,V]: cumsum(exp(logprobs))
	sampleUniform     = "uniform"          // [n]: rng.Float64() of each row
	sampleTemperature = "temperature"      // [1]: T > 0
	sampleTopK        = "top_k"            // int64 [1]: 0 keeps all
	sampleTopP        = "top_p"            // [1]: 0 or 1 keeps all
	sampleToken       = "token"            // int64 [n]
	sampleTokenLP     = "token_logprob"    // float32 [n]: logprobs at token
)

// samplerFloat is the dtype in which the temperature and top-k/top-p graphs
// compute probabilities, and the dtype of their uniform, temperature and top_p
// inputs. It is float64 because the Go sampler is: in float32 the rounding of
// u and of the cumulative sums moves the boundaries between tokens, and a
// draw whose u lands in the gap picks a neighbour. TestGraphSamplerGeneral
// measured it: in float32, 99.50% to 99.90% of the draws agreed without
// top-k (100% with top-k 50); in float64, all of them. On a GPU the cost is
// a few float64 passes over [n,V], small beside the forward.
const samplerFloat = onnx.Double

// samplerKind selects one sampler graph. graphSampler picks it from the
// SamplingParams the same way sampler.sample picks its branch.
type samplerKind int

const (
	samplerGreedy      samplerKind = iota // T = 0 or top-k 1: argmax
	samplerCDF                            // T = 1, no top-k/top-p, cdf given: search it
	samplerTemperature                    // no top-k/top-p: walk exp(lp/T) in id order
	samplerTopK                           // top-k, maybe top-p: walk in rank order
	samplerTopP                           // top-p without top-k: walk in rank order
	numSamplerKinds
)

// String names the kind in graph names and errors.
func (k samplerKind) String() string {
	switch k {
	case samplerGreedy:
		return "greedy"
	case samplerCDF:
		return "cdf"
	case samplerTemperature:
		return "temperature"
	case samplerTopK:
		return "topk"
	case samplerTopP:
		return "topp"
	}
	return fmt.Sprintf("samplerKind(%d)", int(k))
}

// samplerKindFor returns the graph that reproduces sampler.sample's branch for
// sp over a vocabulary of vocab tokens; haveCDF says whether the forward's cdf
// is at hand (without it, T = 1 walks exp(lp) like any other temperature).
func samplerKindFor(sp SamplingParams, haveCDF bool, vocab int) samplerKind {
	noTopK := sp.TopK <= 0 || sp.TopK >= vocab
	noTopP := sp.TopP <= 0 || sp.TopP >= 1
	switch {
	case sp.greedy():
		return samplerGreedy
	case haveCDF && sp.Temperature == 1 && noTopK && noTopP:
		return samplerCDF
	case noTopK && noTopP:
		return samplerTemperature
	case noTopK:
		return samplerTopP
	}
	return samplerTopK
}

// samplerGraph builds the sampler of the given kind over a vocabulary of
// vocab tokens. Every kind takes logprobs [n,1,V] and returns token int64 [n]
// and token_logprob float32 [n], the logprobs input at the token (the
// log-prob before temperature and truncation, PPO's old log-prob, as
// sampler.sample returns). The other inputs are:
//
//	greedy       none
//	cdf          cdf float32 [n,1,V], uniform float32 [n]
//	temperature  uniform, temperature (samplerFloat [n], [1])
//	topk         uniform, temperature, top_p (samplerFloat [n], [1], [1]),
//	             top_k int64 [1]
//	topp         uniform, temperature, top_p
func samplerGraph(kind samplerKind, vocab int) *onnx.Graph {
	g := onnx.NewGraph("sampler_" + kind.String())
	n, v := onnx.Sym("batch"), int64(vocab)
	lp := g.Input(sampleLogprobs, onnx.Float, n, onnx.D(1), onnx.D(v))
	var tok *onnx.Value // [n,1,1] int64
	switch kind {
	case samplerGreedy:
		tok = g.Node("ArgMax", "", []*onnx.Value{lp}, onnx.Attrs{"axis": int64(2), "keepdims": int64(1)},
			onnx.OutSpec{Type: onnx.Int64, Shape: onnx.Shape{n, onnx.D(1), onnx.D(1)}})[0]
	case samplerCDF:
		cdf := g.Input(sampleCDF, onnx.Float, n, onnx.D(1), onnx.D(v))
		u := g.Unsqueeze(g.Input(sampleUniform, onnx.Float, n), 1, 2)
		// searchCDF: the first index whose cdf exceeds u times the total,
		// that is the count of entries at or below it (cdf never decreases),
		// at most V-1.
		target := g.Mul(u, lastOf(g, cdf))
		tok = g.Cast(g.Min(countAtMost(g, cdf, target), g.Scalar(onnx.Float, float64(v-1))), onnx.Int64)
	case samplerTemperature:
		u := g.Unsqueeze(g.Input(sampleUniform, samplerFloat, n), 1, 2)
		invT := g.Reciprocal(g.Input(sampleTemperature, samplerFloat, onnx.D(1)))
		p := tempered(g, lp, g.ReduceMax(lp, true, 2), invT)
		// drawLinear without candidates: the first id whose running sum
		// exceeds u times the total, or when rounding leaves none, the last
		// id of nonzero probability.
		acc := g.CumSum(p, 2)
		count := countAtMost(g, acc, g.Mul(u, lastOf(g, acc)))
		ids := g.Const(onnx.FloatTensor([]int64{v}, iota32(vocab)))
		zero := g.Scalar(onnx.Float, 0)
		last := g.ReduceMax(g.Where(g.Greater(p, g.Scalar(samplerFloat, 0)), ids, zero), true, 2)
		tok = g.Cast(g.Where(g.Less(count, g.Scalar(onnx.Float, float64(v))), count, last), onnx.Int64)
	case samplerTopK, samplerTopP:
		tok = topKP(g, lp, n, v, kind == samplerTopK)
	default:
		panic(fmt.Sprintf("policy: sampler graph of unknown kind %d", int(kind)))
	}
	g.Output(sampleToken, g.Squeeze(tok, 1, 2))
	g.Output(sampleTokenLP, g.Squeeze(g.GatherElements(lp, tok, 2), 1, 2))
	return g
}

// topPHeads are the factors of the most probable token's probability that
// bound the head the topp graph ranks (draw's candidates use 10⁻⁶ alone):
// the largest whose head holds the nucleus wins. Each costs a few passes
// over [n,V], much less than sorting V.
var topPHeads = []float64{1e-1, 1e-2, 1e-3, 1e-4, 1e-6}

// topKP builds draw's path with top-k and/or top-p: rank the head of the
// distribution with TopK (largest first, the lower id first on ties, as
// candidates sorts), temper it, keep a token while the mass ranked before it
// is below p times the mass top-p renormalises by, and walk what is left in
// rank order to u times its mass. It returns the token, [n,1,1] int64.
//
// With top-k (withTopK) the head is the top_k tokens and top-p renormalises
// by their mass. Without it, top-p renormalises by the mass of all V tokens
// and the head is the tokens within the largest factor τ of topPHeads of the
// most probable, counted in the row that has the most of them, whose mass
// holds the nucleus in every row; else all V (sorting all of Qwen's 151,936
// ids is the slow case). A longer head than needed changes nothing: the
// tokens past the nucleus are dropped.
func topKP(g *onnx.Graph, lp *onnx.Value, n onnx.Dim, v int64, withTopK bool) *onnx.Value {
	u := g.Unsqueeze(g.Input(sampleUniform, samplerFloat, n), 1, 2)
	invT := g.Reciprocal(g.Input(sampleTemperature, samplerFloat, onnx.D(1)))
	var topK *onnx.Value
	if withTopK {
		topK = g.Input(sampleTopK, onnx.Int64, onnx.D(1))
	}
	topP := g.Input(sampleTopP, samplerFloat, onnx.D(1))
	zero := g.Scalar(samplerFloat, 0)
	m := g.ReduceMax(lp, true, 2)
	// A top_p of 0 or 1 keeps all: an infinite share of the mass.
	off := g.Or(g.LessOrEqual(topP, zero), g.GreaterOrEqual(topP, g.Scalar(samplerFloat, 1)))
	share := g.Where(off, g.Scalar(samplerFloat, math.Inf(1)), topP)

	vocab := g.Ints(v)
	var k, threshold *onnx.Value
	if withTopK {
		// top_k where it truncates, else V.
		k = g.Where(g.And(g.Greater(topK, g.Ints(0)), g.Less(topK, vocab)), topK, vocab)
	} else {
		all := tempered(g, lp, m, invT)
		threshold = g.Mul(share, g.ReduceSum(all, true, 2))
		allV := g.Scalar(onnx.Float, float64(v))
		best, none := allV, g.Scalar(onnx.Float, 0)
		for _, tau := range topPHeads {
			head := g.GreaterOrEqual(all, g.Scalar(samplerFloat, tau))
			mass := g.ReduceSum(g.Where(head, all, zero), true, 2)
			holds := g.Equal(g.ReduceSum(g.Cast(g.Less(mass, threshold), onnx.Float), false), none)
			longest := g.ReduceMax(g.ReduceSum(g.Cast(head, onnx.Float), true, 2), false)
			best = g.Min(best, g.Where(holds, longest, allV))
		}
		k = g.Reshape(g.Cast(best, onnx.Int64), 1)
	}
	head := onnx.Shape{n, onnx.D(1), onnx.Unknown}
	top := g.Node("TopK", "", []*onnx.Value{lp, k}, onnx.Attrs{"axis": int64(2), "largest": int64(1), "sorted": int64(1)},
		onnx.OutSpec{Type: onnx.Float, Shape: head}, onnx.OutSpec{Type: onnx.Int64, Shape: head})
	vals, ids := top[0], top[1]
	p := tempered(g, vals, m, invT)

	// Top-p: before[j] is the mass ranked before j, summed in rank order as
	// draw does. With top-k, the mass to share is the head's, before[k-1] +
	// p[k-1], the same sum.
	before := g.Node("CumSum", "", []*onnx.Value{p, g.Const(onnx.Int64Tensor(nil, []int64{2}))}, onnx.Attrs{"exclusive": int64(1)},
		onnx.OutSpec{Type: samplerFloat, Shape: head})[0]
	if withTopK {
		threshold = g.Mul(share, g.Add(lastOf(g, before), lastOf(g, p)))
	}
	keep := g.Less(before, threshold) // a prefix; rank 0 always (before 0 < threshold)
	kept := g.Where(keep, p, zero)

	// drawLinear over the kept candidates: the first rank whose running sum
	// exceeds u times the kept mass, else the last kept rank.
	acc := g.CumSum(kept, 2)
	rank := countAtMost(g, acc, g.Mul(u, lastOf(g, acc)))
	nKept := g.ReduceSum(g.Cast(keep, onnx.Float), true, 2)
	rank = g.Cast(g.Min(rank, g.Sub(nKept, g.Scalar(onnx.Float, 1))), onnx.Int64)
	return g.GatherElements(ids, rank, 2)
}

// tempered returns exp((x − m)·invT) in samplerFloat: the difference in
// float32 and the rest in samplerFloat, as draw computes its probabilities.
func tempered(g *onnx.Graph, x, m, invT *onnx.Value) *onnx.Value {
	return g.Exp(g.Mul(g.Cast(g.Sub(x, m), samplerFloat), invT))
}

// lastOf slices the last entry of axis 2 of an [n,1,K] value, keeping the
// axis: the total of a cumulative sum.
func lastOf(g *onnx.Graph, x *onnx.Value) *onnx.Value {
	out := g.Slice(x, []int64{2}, []int64{-1}, []int64{math.MaxInt64})
	out.Shape[2] = onnx.D(1)
	return out
}

// countAtMost counts, per row, the entries of x [n,1,K] that are ≤ target
// [n,1,1]; when x never decreases this is the index of the first entry above
// target. The count is float32 (exact below 2²⁴), so that only float
// reductions are needed on the device.
func countAtMost(g *onnx.Graph, x, target *onnx.Value) *onnx.Value {
	return g.ReduceSum(g.Cast(g.LessOrEqual(x, target), onnx.Float), true, 2)
}

// iota32 returns 0, 1, ..., n-1 as float32.
func iota32(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)
	}
	return out
}

// graphSampler samples with the sampler graphs, one ONNX Runtime session per
// kind, built on first use. It takes its inputs as ort tensors, so that the
// forward's outputs can be passed as they are, wherever they live. It is
// safe for concurrent use, but not Close.
type graphSampler struct {
	vocab int
	so    ort.Options
	mu    sync.Mutex // guards sess
	sess  [numSamplerKinds]*ort.Session
}

// newGraphSampler returns a sampler over vocab tokens whose sessions run with
// so (the forward's device and threads).
func newGraphSampler(vocab int, so ort.Options) (*graphSampler, error) {
	if vocab <= 0 || vocab >= 1<<24 {
		return nil, fmt.Errorf("policy: graph sampler: vocabulary %d must be in (0, 2^24)", vocab)
	}
	return &graphSampler{vocab: vocab, so: so}, nil
}

// session returns the session of kind, building it on first use.
func (gs *graphSampler) session(kind samplerKind) (*ort.Session, error) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if s := gs.sess[kind]; s != nil {
		return s, nil
	}
	s, err := ort.NewSessionFromGraph(samplerGraph(kind, gs.vocab), gs.so)
	if err != nil {
		return nil, fmt.Errorf("policy: %s sampler: %w", kind, err)
	}
	gs.sess[kind] = s
	return s, nil
}

// sample draws one token per row of logprobs ([n,1,V] log-softmax rows, the
// forward's output) and returns it with its log-prob, as sampler.sample does
// row by row with normalized logits. cdf is the forward's cumulative sum, or
// nil. u holds each row's rng.Float64(), the one number sampler.sample takes
// per non-greedy draw; greedy sampling ignores it (it may be nil).
//
// The inputs may be ORT-owned (a resident forward's outputs) or in Go
// memory; the run goes through an ort.Binding and only the tokens and
// log-probs come back, charged to ctx's meter phase.
func (gs *graphSampler) sample(ctx context.Context, logprobs, cdf *ort.Tensor, u []float64, sp SamplingParams) ([]int32, []float32, error) {
	shape := logprobs.Shape()
	if len(shape) != 3 || shape[1] != 1 || shape[2] != int64(gs.vocab) {
		return nil, nil, fmt.Errorf("policy: graph sampler: logprobs %v, want [n,1,%d]", shape, gs.vocab)
	}
	n := int(shape[0])
	if n == 0 {
		return nil, nil, nil
	}
	kind := samplerKindFor(sp, cdf != nil, gs.vocab)
	if kind != samplerGreedy && len(u) != n {
		return nil, nil, fmt.Errorf("policy: graph sampler: %d uniforms for %d rows", len(u), n)
	}
	in := map[string]*ort.Tensor{sampleLogprobs: logprobs}
	var owned []*ort.Tensor
	defer func() {
		for _, t := range owned {
			t.Destroy()
		}
	}()
	// add returns the function that records the tensor made for input name.
	add := func(name string) func(*ort.Tensor, error) error {
		return func(t *ort.Tensor, err error) error {
			if err != nil {
				return fmt.Errorf("policy: graph sampler: %s: %w", name, err)
			}
			owned = append(owned, t)
			in[name] = t
			return nil
		}
	}
	var err error
	switch kind {
	case samplerCDF:
		in[sampleCDF] = cdf
		u32 := make([]float32, n)
		for i, x := range u {
			u32[i] = float32(x)
		}
		err = add(sampleUniform)(ort.NewTensor([]int64{int64(n)}, u32))
	case samplerTemperature, samplerTopK, samplerTopP:
		err = add(sampleUniform)(samplerFloats([]int64{int64(n)}, u))
		if err == nil {
			err = add(sampleTemperature)(samplerFloats([]int64{1}, []float64{sp.Temperature}))
		}
		if err == nil && kind == samplerTopK {
			err = add(sampleTopK)(ort.NewTensor([]int64{1}, []int64{int64(sp.TopK)}))
		}
		if err == nil && kind != samplerTemperature {
			err = add(sampleTopP)(samplerFloats([]int64{1}, []float64{sp.TopP}))
		}
	}
	if err != nil {
		return nil, nil, err
	}
	s, err := gs.session(kind)
	if err != nil {
		return nil, nil, err
	}
	toks, lps := make([]int64, n), make([]float32, n)
	if err := runBound(ctx, s, in, map[string]func() (*ort.Tensor, error){
		sampleToken:   func() (*ort.Tensor, error) { return ort.NewTensor([]int64{int64(n)}, toks) },
		sampleTokenLP: func() (*ort.Tensor, error) { return ort.NewTensor([]int64{int64(n)}, lps) },
	}); err != nil {
		return nil, nil, fmt.Errorf("policy: %s sampler: %w", kind, err)
	}
	tokens := make([]int32, len(toks))
	for i, t := range toks {
		tokens[i] = int32(t)
	}
	return tokens, lps, nil
}

// runBound runs s through an ort.Binding on the inputs (Go-memory or
// ORT-owned), writing each output into the Go-memory tensor its function
// makes.
func runBound(ctx context.Context, s *ort.Session, in map[string]*ort.Tensor, out map[string]func() (*ort.Tensor, error)) error {
	b, err := s.NewBinding()
	if err != nil {
		return err
	}
	defer b.Close()
	for name, t := range in {
		if err := b.Input(name, t); err != nil {
			return err
		}
	}
	for name, make := range out {
		t, err := make()
		if err != nil {
			return err
		}
		defer t.Destroy()
		if err := b.Output(name, t); err != nil {
			return err
		}
	}
	_, err = b.Run(ctx)
	return err
}

// samplerFloats makes a samplerFloat tensor of x.
func samplerFloats(shape []int64, x []float64) (*ort.Tensor, error) {
	if samplerFloat == onnx.Double {
		return ort.NewTensor(shape, x)
	}
	x32 := make([]float32, len(x))
	for i, v := range x {
		x32[i] = float32(v)
	}
	return ort.NewTensor(shape, x32)
}

// Close releases the sessions.
func (gs *graphSampler) Close() error {
	var first error
	for i, s := range gs.sess {
		if s == nil {
			continue
		}
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
		gs.sess[i] = nil
	}
	return first
}
