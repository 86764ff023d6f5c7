package advantage

import (
	"fmt"
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-5 }

func TestOutcome(t *testing.T) {
	// R = [1,0,0,1]: mean 0.5, sample variance (4·0.25)/3 = 1/3, std = 1/√3;
	// A = ±0.5·√3 = ±√3/2 (ε shifts it by ~1e-6).
	h := math.Sqrt(3) / 2
	got := Outcome([]float64{1, 0, 0, 1}, AdvNormMeanStd)
	for i, w := range []float64{h, -h, -h, h} {
		if !near(got[i], w) {
			t.Errorf("mean_std A[%d] = %v, want %v", i, got[i], w)
		}
	}
	got = Outcome([]float64{1, 0, 0, 1}, AdvNormMean)
	for i, w := range []float64{0.5, -0.5, -0.5, 0.5} {
		if got[i] != w {
			t.Errorf("mean A[%d] = %v, want %v", i, got[i], w)
		}
	}
	// veRL: a group of one has mean 0 and std 1.
	if got := Outcome([]float64{0.7}, AdvNormMeanStd); !near(got[0], 0.7) {
		t.Errorf("singleton = %v", got)
	}
	// All fail: every advantage is exactly 0.
	for _, a := range Outcome([]float64{0, 0, 0}, AdvNormMeanStd) {
		if a != 0 {
			t.Errorf("all-fail outcome advantage %v", a)
		}
	}
}

func TestNormalizeIG(t *testing.T) {
	igs := [][]float64{{1, 3}, {}, {2}}
	// All steps [1,3,2]: mean 2, sample variance (1+1+0)/2 = 1, std 1.
	got := NormalizeIG(igs, IGNorm{Kind: "zscore"})
	want := [][]float64{{-1, 1}, {}, {0}}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("shape %v", got)
		}
		for j := range want[i] {
			if !near(got[i][j], want[i][j]) {
				t.Errorf("zscore[%d][%d] = %v, want %v", i, j, got[i][j], want[i][j])
			}
		}
	}
	c, err := ParseIGNorm("clip:1.5")
	if err != nil || c.String() != "clip:1.5" {
		t.Fatalf("ParseIGNorm = %+v %v", c, err)
	}
	got = NormalizeIG([][]float64{{-2, 0.5, 7}}, c)
	if got[0][0] != -1.5 || got[0][1] != 0.5 || got[0][2] != 1.5 {
		t.Errorf("clip = %v", got)
	}
	if got := NormalizeIG([][]float64{{-2, 4}}, IGNorm{Kind: "none"}); got[0][0] != -2 || got[0][1] != 4 {
		t.Errorf("none = %v", got)
	}
	for _, bad := range []string{"clip:", "clip:-1", "minmax"} {
		if _, err := ParseIGNorm(bad); err == nil {
			t.Errorf("ParseIGNorm(%q): want error", bad)
		}
	}
}

// allFail is a group of three failed trajectories of 8 tokens each: 2
// prompt tokens, 3 generated (think, <search>, query at position 3), 2
// observation tokens, 1 generated answer token.
func allFail() []Sample {
	mask := []float32{0, 0, 1, 1, 1, 0, 0, 1}
	steps := []StepSpans{{Query: Span{3, 4}, Generated: []Span{{2, 5}}}}
	return []Sample{
		{Reward: 0, Mask: mask, Steps: steps, IG: []StepValue{{0, 1}}},
		{Reward: 0, Mask: mask, Steps: steps, IG: []StepValue{{0, 3}}},
		{Reward: 0, Mask: mask, Steps: steps}, // its step was skipped (short observation)
	}
}

func TestAllFailGroup(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IGCoef = 0.5
	got, err := Group(cfg, allFail())
	if err != nil {
		t.Fatal(err)
	}
	// Outcome advantages are 0. IGs [1,3]: mean 2, sample std √2, Â = ∓1/√2;
	// λ·Â = ∓0.5/√2 = ∓0.353553 on the query token (position 3) only.
	q := 0.5 / math.Sqrt2
	want := [][]float64{
		{0, 0, 0, -q, 0, 0, 0, 0},
		{0, 0, 0, q, 0, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 0, 0},
	}
	nonzero := false
	for i := range want {
		for k := range want[i] {
			if !near(float64(got[i][k]), want[i][k]) {
				t.Errorf("A[%d][%d] = %v, want %v", i, k, got[i][k], want[i][k])
			}
			nonzero = nonzero || got[i][k] != 0
		}
	}
	if !nonzero {
		t.Error("all-fail group got no IG gradient")
	}
	// Scope step: positions 2..4 carry the term.
	cfg.IGScope = ScopeStep
	got, _ = Group(cfg, allFail())
	for k, w := range []float64{0, 0, -q, -q, -q, 0, 0, 0} {
		if !near(float64(got[0][k]), w) {
			t.Errorf("step scope A[0][%d] = %v, want %v", k, got[0][k], w)
		}
	}
	// Plain GRPO (ig_coef 0): all zero.
	cfg.IGCoef = 0
	got, _ = Group(cfg, allFail())
	for _, a := range got[1] {
		if a != 0 {
			t.Errorf("grpo all-fail advantage %v", a)
		}
	}
}

func TestTokensMixedGroup(t *testing.T) {
	// Rewards [1,0]: mean 0.5, sample std √0.5, A = ±0.5/√0.5 = ±√0.5.
	s := allFail()[:2]
	s[0].Reward = 1
	cfg := DefaultConfig() // λ = 1, zscore, query scope
	got, err := Group(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	a := math.Sqrt(0.5)
	// Â = ∓1/√2 on the query token; observation and prompt tokens stay 0.
	w0 := []float64{0, 0, a, a - a, a, 0, 0, a}
	w1 := []float64{0, 0, -a, -a + a, -a, 0, 0, -a}
	for k := range w0 {
		if !near(float64(got[0][k]), w0[k]) || !near(float64(got[1][k]), w1[k]) {
			t.Errorf("token %d: got %v %v, want %v %v", k, got[0][k], got[1][k], w0[k], w1[k])
		}
	}
	// A span over observation tokens leaves them at 0 (loss mask).
	toks, err := Tokens([]float32{1, 0, 0, 1}, 0, []StepSpans{{Query: Span{0, 4}}}, []StepValue{{0, 2}}, 1, ScopeQuery)
	if err != nil || toks[0] != 2 || toks[1] != 0 || toks[2] != 0 || toks[3] != 2 {
		t.Errorf("masked span = %v %v", toks, err)
	}
	if _, err := Tokens([]float32{1}, 0, nil, []StepValue{{0, 1}}, 1, ScopeQuery); err == nil {
		t.Error("IG for a missing step: want error")
	}
	if _, err := Tokens([]float32{1}, 0, []StepSpans{{Query: Span{0, 5}}}, []StepValue{{0, 1}}, 1, ScopeQuery); err == nil {
		t.Error("span past the end: want error")
	}
	if _, err := ParseScope("turn"); err == nil {
		t.Error("ParseScope(turn): want error")
	}
	if _, err := ParseAdvNorm("std"); err == nil {
		t.Error("ParseAdvNorm(std): want error")
	}
}

// TestSingleStepIGZScore: a group whose only scored search step has IG 0.7
// nats gets Â = 0 under zscore (before: 0.7/(1+ε)), so an all-fail group
// with one step has all-zero advantages; none and clip keep the value.
func TestSingleStepIGZScore(t *testing.T) {
	got := NormalizeIG([][]float64{{}, {0.7}, {}}, IGNorm{Kind: "zscore"})
	if len(got[1]) != 1 || got[1][0] != 0 {
		t.Errorf("zscore of one step = %v, want [[] [0] []]", got)
	}
	if got := NormalizeIG([][]float64{{0.7}}, IGNorm{Kind: "none"}); got[0][0] != 0.7 {
		t.Errorf("none of one step = %v", got)
	}
	if got := NormalizeIG([][]float64{{0.7}}, IGNorm{Kind: "clip", Clip: 0.5}); got[0][0] != 0.5 {
		t.Errorf("clip:0.5 of one step = %v", got)
	}
	samples := allFail()
	samples[1].IG = nil // only sample 0's step (IG 1) is scored
	adv, err := Group(DefaultConfig(), samples)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range adv {
		for k, x := range a {
			if x != 0 {
				t.Errorf("sample %d token %d: advantage %v, want 0", i, k, x)
			}
		}
	}
}

// TestGroups: records in rollout order; question "q" drawn twice into one
// batch (G = 2) makes two groups, and a lone question its own.
func TestGroups(t *testing.T) {
	ids := []string{"q", "q", "r", "r", "q", "q", "q", "q", "s"}
	samples := []int{0, 1, 0, 1, 0, 1, 0, 1, 0}
	got, err := Groups(ids, samples)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Groups = %v, want %v", got, want)
	}
	if _, err := Groups([]string{"q"}, nil); err == nil {
		t.Error("mismatched lengths accepted")
	}
}
