package ig

import (
	"math"
	"testing"
)

// TestGainHandWorked checks IG_t = logP_real − (1/N) Σ_j logP_rand,j on
// values worked out by hand.
func TestGainHandWorked(t *testing.T) {
	cases := []struct {
		real   float64
		random []float64
		want   float64
	}{
		// Real documents help: −1 − mean(−2, −4) = −1 − (−3) = 2.
		{-1, []float64{-2, -4}, 2},
		// Real documents hurt: −5 − mean(−1, −2, −3) = −5 − (−2) = −3.
		{-5, []float64{-1, -2, -3}, -3},
		// As good as random: −2.5 − (−2.5) = 0.
		{-2.5, []float64{-2.5}, 0},
		// −0.25 − mean(−0.5, −1.5, −1, −3) = −0.25 − (−1.5) = 1.25.
		{-0.25, []float64{-0.5, -1.5, -1, -3}, 1.25},
	}
	for _, c := range cases {
		if got := Gain(c.real, c.random); got != c.want {
			t.Errorf("Gain(%v, %v) = %v, want %v", c.real, c.random, got, c.want)
		}
	}
	if got := Gain(-1, nil); !math.IsNaN(got) {
		t.Errorf("Gain with no counterfactual = %v, want NaN", got)
	}
}

// TestCollectUsesGain: Collect's IG of a step is Gain of its real and
// random log-probs, each a WeightedLogP of its tokens. One item, one step,
// one gold; real tokens [−1, −1, −1, −2] → (3·(−3) − 2)/(9 + 1) = −1.1;
// random [−2] → −2 and [−3, −1] → (−9 − 3)/6 = −2; IG = −1.1 − (−2) = 0.9.
func TestCollectUsesGain(t *testing.T) {
	reqs := []Request{{Item: 0, Step: 0, Kind: Real}, {Item: 0, Step: 0, Kind: Random}, {Item: 0, Step: 0, Kind: Random}}
	logps := [][]float64{{-1, -1, -1, -2}, {-2}, {-3, -1}}
	res, err := Collect(1, reqs, logps)
	if err != nil {
		t.Fatal(err)
	}
	s := res[0].Steps[0]
	if math.Abs(s.LogpReal+1.1) > 1e-12 || s.LogpRandomMean != -2 || math.Abs(s.IG-0.9) > 1e-12 {
		t.Fatalf("step %+v, want logp_real −1.1, logp_random_mean −2, ig 0.9", s)
	}
	if s.IG != Gain(s.LogpReal, []float64{-2, -2}) || res[0].Mean != s.IG {
		t.Fatalf("IG %v is not Gain's %v", s.IG, Gain(s.LogpReal, []float64{-2, -2}))
	}
}
