package demo

import (
	"math"
	"strings"
	"testing"
)

// TestCI95HandWorked: {1, 2, 3} has mean 2 and sample std 1, so the
// half-width is t(0.975, 2)·1/√3 = 4.303/1.7321 = 2.4843.
func TestCI95HandWorked(t *testing.T) {
	m, h := CI95([]float64{1, 2, 3})
	if m != 2 || math.Abs(h-2.4843) > 1e-4 {
		t.Errorf("CI95 = %v ± %v, want 2 ± 2.4843", m, h)
	}
	if _, h := CI95([]float64{5}); !math.IsNaN(h) {
		t.Errorf("one value: half-width %v, want NaN", h)
	}
	// Past the table: t(0.975, 60) is 2.0003.
	if q := TQuantile975(60); math.Abs(q-2.0003) > 2e-3 {
		t.Errorf("t(0.975, 60) = %v, want 2.0003", q)
	}
}

// TestPowerHandWorked: a paired std of 0.029 (the 6-seed bench of commit
// 24df8ed) needs ((1.960 + 0.842)·0.029/0.02)² = 16.50 → 17 seeds to
// detect 0.02; 6 seeds detect (2.571 + 0.842)·0.029/√6 = 0.0404.
func TestPowerHandWorked(t *testing.T) {
	if n := SeedsFor(0.029, 0.02); n != 17 {
		t.Errorf("SeedsFor = %d, want 17", n)
	}
	if d := DetectableAt(0.029, 6); math.Abs(d-0.0404) > 1e-4 {
		t.Errorf("DetectableAt = %v, want 0.0404", d)
	}
}

// TestSummary checks the summary's paired lines on a hand-made report: 4
// questions, IG-GRPO right on 3 and GRPO on 2 where the warm start had 1.
func TestSummary(t *testing.T) {
	r := &Report{Seed: 3, Iterations: 8,
		TestEM: &QuestionEM{ID: []string{"a", "b", "c", "d"}, Before: []float64{1, 0, 0, 0},
			IGGRPO: []float64{1, 1, 1, 0}, GRPO: []float64{1, 1, 0, 0}},
		Trend:   map[string]Trend{"ig-grpo": {Reward: []float64{0.1, 0.2, 0.3, 0.4}, DevIter: []int{0, 8}, DevEM: []float64{0.3, 0.4}}},
		Seconds: map[string]float64{"sft": 10, "ig-grpo": 5}}
	var b strings.Builder
	r.Summary(&b)
	s := b.String()
	for _, want := range []string{"seed 3, 8 RL iterations", "IG-GRPO − before", "+0.500", "IG-GRPO − GRPO", "+0.250",
		"on the 3 questions the warm start fails: IG-GRPO 0.667, GRPO 0.333", "reward 0.100 → 0.400", "dev 0: 0.30, 8: 0.40", "total 15s"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

// The two RL runs that went at once count once in the total, by their wall
// time together.
func TestTotalSecondsAtOnce(t *testing.T) {
	apart := &Report{Seconds: map[string]float64{"sft": 10, "ig-grpo": 30, "grpo": 20}}
	if got := apart.TotalSeconds(); got != 60 {
		t.Errorf("runs one after the other: total %g, want 60", got)
	}
	atOnce := &Report{Seconds: map[string]float64{"sft": 10, "ig-grpo": 30, "grpo": 20, "rl": 31}}
	if got := atOnce.TotalSeconds(); got != 41 {
		t.Errorf("runs at once: total %g, want 41", got)
	}
	var b strings.Builder
	atOnce.Summary(&b)
	if !strings.Contains(b.String(), "the two RL runs at once 31s; total 41s") {
		t.Errorf("summary's time line:\n%s", b.String())
	}
}
