package ig

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/igsearch/igsearch/pipeline/protocol"
)

const (
	prompt  = "P\n<|im_start|>assistant\n"
	docA    = "<documents>Doc 1(Title: A) alpha text</documents>"
	docB    = "<documents>Doc 1(Title: B) beta text</documents>"
	respTwo = "<think>t0</think>\n<search>q1</search>\n\n" + docA + "\n\n<refine>r1</refine>\n" +
		"<think>t1</think>\n<search>q2</search>\n\n" + docB + "\n\n<refine>r2</refine>\n<answer>x</answer>"
	// respDup repeats step A of respTwo, then has a too-short observation.
	respDup = "<search>q3</search>\n\n" + docA + "\n\n<refine>r1</refine>\n" +
		"<search>q4</search>\n\n<documents>short</documents>\n\n<answer>y</answer>"
)

func parsed() []protocol.Parsed {
	p := protocol.AutoRefine()
	return []protocol.Parsed{protocol.Parse(p, prompt, respTwo), protocol.Parse(p, prompt, respDup)}
}

func TestWeightedLogP(t *testing.T) {
	cases := []struct {
		lp   []float64
		want float64
	}{
		// w = [3,3,3,1,1]/2.2; Σ lp·w = (−6·3 − 9·1)/2.2 = −27/2.2; /5 = −27/11.
		{[]float64{-1, -2, -3, -4, -5}, -27.0 / 11},
		// w = [3,3,3,1]/2.5 = [1.2,1.2,1.2,0.4]; Σ = −3.6 − 2 = −5.6; /4 = −1.4.
		{[]float64{-1, -1, -1, -5}, -1.4},
		// L <= 3: all weights equal, plain mean.
		{[]float64{-1, -3}, -2},
		{nil, 0},
	}
	for _, c := range cases {
		if got := WeightedLogP(c.lp); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("WeightedLogP(%v) = %v, want %v", c.lp, got, c.want)
		}
	}
	if got := WeightedLogP([]float32{-1, -1, -1, -5}); math.Abs(got+1.4) > 1e-6 {
		t.Errorf("float32: %v", got)
	}
}

func TestContext(t *testing.T) {
	tr := parsed()[0]
	prefix := "P\n<|im_start|>assistant\n<think>t0</think>"
	if got := Prefix(tr); got != prefix {
		t.Fatalf("Prefix = %q", got)
	}
	c0 := prefix + "\n<search>q1</search>\n" + docA + "\n<refine>r1</refine>"
	if got := Context(tr, 0, nil); got != c0 {
		t.Errorf("C_0^real:\n got %q\nwant %q", got, c0)
	}
	c1 := c0 + "\n<search>q2</search>\n" + docB + "\n<refine>r2</refine>"
	if got := Context(tr, 1, nil); got != c1 {
		t.Errorf("C_1^real:\n got %q\nwant %q", got, c1)
	}
	rand1 := c0 + "\n<search>q2</search>\n<documents>X</documents>"
	if got := Context(tr, 1, &Pair{Obs: "<documents>X</documents>"}); got != rand1 {
		t.Errorf("C_1^rand (no refine):\n got %q\nwant %q", got, rand1)
	}
	rand0 := prefix + "\n<search>q1</search>\n<documents>Y</documents>\n<refine>ry</refine>"
	if got := Context(tr, 0, &Pair{"<documents>Y</documents>", "<refine>ry</refine>"}); got != rand0 {
		t.Errorf("C_0^rand:\n got %q\nwant %q", got, rand0)
	}
	if got, want := sharedLen(tr, 1), len(c0+"\n<search>q2</search>\n"); got != want {
		t.Errorf("sharedLen = %d, want %d", got, want)
	}
	// Search-R1: no refine; the information block is the observation.
	sr := protocol.Parse(protocol.SearchR1(), "Q:", " <think>a</think> <search>s</search>\n\n<information>Doc 1(Title: T) body text</information>\n\n<answer>b</answer>")
	want := "Q: <think>a</think>\n<search>s</search>\n<information>Doc 1(Title: T) body text</information>"
	if got := Context(sr, 0, nil); got != want {
		t.Errorf("search-r1 C_0:\n got %q\nwant %q", got, want)
	}
}

func TestPool(t *testing.T) {
	ps := parsed()
	a := Pair{docA, "<refine>r1</refine>"}
	b := Pair{docB, "<refine>r2</refine>"}
	pool := NewPool(ps)
	if want := (Pool{a, b, a}); !reflect.DeepEqual(pool, want) {
		t.Fatalf("pool = %+v, want %+v", pool, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// Own = a: candidates [b], fewer than 3, so with replacement.
	if got := pool.Draw(a, 3, rng); !reflect.DeepEqual(got, []Pair{b, b, b}) {
		t.Errorf("Draw(a,3) = %+v", got)
	}
	// Own = b: candidates [a, a], 2 >= 2, without replacement.
	if got := pool.Draw(b, 2, rng); !reflect.DeepEqual(got, []Pair{a, a}) {
		t.Errorf("Draw(b,2) = %+v", got)
	}
	// Own not in the pool: 3 of 3 without replacement is a permutation.
	got := pool.Draw(Pair{Obs: "other"}, 3, rng)
	if n := count(got, a); n != 2 || count(got, b) != 1 {
		t.Errorf("Draw(other,3) = %+v", got)
	}
	// Everything excluded: fall back to the whole pool.
	if got := (Pool{a}).Draw(a, 2, rng); !reflect.DeepEqual(got, []Pair{a, a}) {
		t.Errorf("fallback = %+v", got)
	}
	if got := (Pool{}).Draw(a, 2, rng); got != nil {
		t.Errorf("empty pool = %+v", got)
	}
	// Same seed, same draws; without replacement never repeats an index.
	big := Pool{{Obs: "1"}, {Obs: "2"}, {Obs: "3"}, {Obs: "4"}, {Obs: "5"}}
	d1 := big.Draw(Pair{}, 4, rand.New(rand.NewPCG(7, 7)))
	d2 := big.Draw(Pair{}, 4, rand.New(rand.NewPCG(7, 7)))
	if !reflect.DeepEqual(d1, d2) {
		t.Error("draws not reproducible")
	}
	seen := map[Pair]bool{}
	for _, p := range d1 {
		if seen[p] {
			t.Errorf("repeat without replacement: %+v", d1)
		}
		seen[p] = true
	}
}

func count(ps []Pair, p Pair) int {
	n := 0
	for _, q := range ps {
		if q == p {
			n++
		}
	}
	return n
}

func TestRequests(t *testing.T) {
	ps := parsed()
	items := []Item{{ps[0], []string{"x", "y", "z"}}, {ps[1], []string{"w"}}, {ps[0], nil}}
	cfg := DefaultConfig()
	cfg.Random = 2
	cfg.Gold = Gold{Best: 2}
	var calls [][2]int
	draw := func(item, step, n int) ([]Pair, error) {
		calls = append(calls, [2]int{item, step})
		return []Pair{{Obs: "<documents>R1</documents>"}, {Obs: "<documents>R2</documents>"}}[:n], nil
	}
	reqs, err := Requests(items, cfg, draw)
	if err != nil {
		t.Fatal(err)
	}
	// item 0: 2 steps × 2 golds × (1 real + 2 random) = 12; item 1: step 1 is
	// too short, so 1 step × 1 gold × 3 = 3; item 2 has no golds.
	if len(reqs) != 15 {
		t.Fatalf("%d requests, want 15", len(reqs))
	}
	if !reflect.DeepEqual(calls, [][2]int{{0, 0}, {0, 1}, {1, 0}}) {
		t.Errorf("draw calls = %v", calls)
	}
	c0 := "P\n<|im_start|>assistant\n<think>t0</think>\n<search>q1</search>\n" + docA + "\n<refine>r1</refine>"
	want0 := Request{Item: 0, Step: 0, Gold: 0, Kind: Real, Context: c0 + "\n<answer> ", Continuation: "x",
		Shared: len("P\n<|im_start|>assistant\n<think>t0</think>\n<search>q1</search>\n")}
	if reqs[0] != want0 {
		t.Errorf("reqs[0] = %+v\nwant %+v", reqs[0], want0)
	}
	want2 := want0
	want2.Kind, want2.Draw = Random, 1
	want2.Context = "P\n<|im_start|>assistant\n<think>t0</think>\n<search>q1</search>\n<documents>R2</documents>\n<answer> "
	if reqs[2] != want2 {
		t.Errorf("reqs[2] = %+v\nwant %+v", reqs[2], want2)
	}
	if reqs[3].Gold != 1 || reqs[3].Kind != Real || reqs[3].Continuation != "y" {
		t.Errorf("reqs[3] = %+v", reqs[3])
	}
	if last := reqs[14]; last.Item != 1 || last.Step != 0 || last.Continuation != "w" || last.Draw != 1 {
		t.Errorf("reqs[14] = %+v", last)
	}
	boom := errors.New("boom")
	if _, err := Requests(items, cfg, func(int, int, int) ([]Pair, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("draw error = %v", err)
	}
}

func TestBatchAndCorpusDraws(t *testing.T) {
	ps := parsed()
	d := BatchDraws(ps, rand.New(rand.NewPCG(3, 4)))
	got, _ := d(0, 0, 1) // own = a; the only other pair is b
	if !reflect.DeepEqual(got, []Pair{{docB, "<refine>r2</refine>"}}) {
		t.Errorf("BatchDraws = %+v", got)
	}
	var excluded []string
	sample := func(k int, exclude []string) ([]protocol.Doc, error) {
		excluded = exclude
		return []protocol.Doc{{ID: "9", Contents: "Rnd\nrandom words"}}[:k], nil
	}
	cd := CorpusDraws(1, func(item, step int) []string { return []string{"d1", "d2"} }, sample, protocol.AutoRefine().ObservationBlock)
	got, err := cd(0, 1, 2)
	want := Pair{Obs: "<documents>Doc 1(Title: Rnd) random words</documents>"}
	if err != nil || !reflect.DeepEqual(got, []Pair{want, want}) || !slices.Equal(excluded, []string{"d1", "d2"}) {
		t.Errorf("CorpusDraws = %+v, %v, excluded %v", got, err, excluded)
	}
}

func TestCollect(t *testing.T) {
	reqs := []Request{
		{Item: 0, Step: 1, Gold: 0, Kind: Real},
		{Item: 0, Step: 1, Gold: 0, Kind: Random},
		{Item: 0, Step: 0, Gold: 0, Kind: Real},
		{Item: 0, Step: 0, Gold: 0, Kind: Random},
		{Item: 0, Step: 0, Gold: 0, Kind: Random, Draw: 1},
		{Item: 0, Step: 0, Gold: 1, Kind: Real},
		{Item: 0, Step: 0, Gold: 1, Kind: Random},
		{Item: 0, Step: 0, Gold: 1, Kind: Random, Draw: 1},
	}
	logps := [][]float64{
		{-2, -2, -2, -2}, {-3}, // step 1: real −2, random −3: IG 1
		{-1}, {-2}, {-4}, // step 0 gold 0: real −1, mean −3
		{-0.5}, {-0.5}, {-1.5}, // gold 1: real −0.5 (best), mean −1: IG 0.5
	}
	res, err := Collect(2, reqs, logps)
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Steps: []StepIG{{0, -0.5, -1, 0.5}, {1, -2, -3, 1}}, Mean: 0.75},
		{Steps: []StepIG{}, Mean: 0},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Collect = %+v\nwant %+v", res, want)
	}
	js, _ := json.Marshal(res[0])
	if string(js) != `{"ig_steps":[{"step":0,"logp_real":-0.5,"logp_random_mean":-1,"ig":0.5},{"step":1,"logp_real":-2,"logp_random_mean":-3,"ig":1}],"ig_mean":0.75}` {
		t.Errorf("json = %s", js)
	}
	if _, err := Collect(1, reqs, logps[:3]); err == nil {
		t.Error("length mismatch: want error")
	}
	// A step with only a real request is skipped.
	res, _ = Collect(1, reqs[:1], logps[:1])
	if len(res[0].Steps) != 0 {
		t.Errorf("no baseline: %+v", res[0])
	}
}

func TestTokensAndFlags(t *testing.T) {
	ids, start := Tokens([]int32{1, 2, 3, 4, 5}, []int32{9, 8}, 3)
	if !slices.Equal(ids, []int32{3, 4, 5, 9, 8}) || start != 3 {
		t.Errorf("Tokens = %v %d", ids, start)
	}
	if ids, start := Tokens([]int{1}, []int{2}, 0); !slices.Equal(ids, []int{1, 2}) || start != 1 {
		t.Errorf("no limit = %v %d", ids, start)
	}
	if g, err := ParseGold("best:3"); err != nil || g.Best != 3 || g.String() != "best:3" || len(g.Select([]string{"a", "b"})) != 2 {
		t.Errorf("best:3 = %+v %v", g, err)
	}
	if g, err := ParseGold("first"); err != nil || !slices.Equal(g.Select([]string{"a", "b"}), []string{"a"}) {
		t.Errorf("first = %+v %v", g, err)
	}
	for _, bad := range []string{"best:0", "best:", "all"} {
		if _, err := ParseGold(bad); err == nil {
			t.Errorf("ParseGold(%q): want error", bad)
		}
	}
	if _, err := ParseCounterfactual("corpus"); err != nil {
		t.Error(err)
	}
	if _, err := ParseCounterfactual("zero"); err == nil {
		t.Error("ParseCounterfactual(zero): want error")
	}
}
