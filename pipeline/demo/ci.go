package demo

import "math"

// CI95 is the mean of xs and the half-width of its two-sided 95%
// confidence interval, mean ± t(0.975, n−1)·s/√n with the sample standard
// deviation s: a t interval, for a handful of seeds or for the per-question
// differences of a paired comparison. The half-width is NaN for fewer than
// two values.
func CI95(xs []float64) (mean, half float64) {
	n := len(xs)
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	if n < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / float64(n-1))
	return mean, TQuantile975(n-1) * sd / math.Sqrt(float64(n))
}

// t975 is Student's t at 0.975 for 1 to 30 degrees of freedom.
var t975 = [...]float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
	2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
	2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}

// TQuantile975 is Student's t quantile at 0.975 (the two-sided 95% point)
// for df degrees of freedom: a table to 30, then the normal approximation
// with its first correction term, z + (z³+z)/(4·df), within 0.002 of the
// exact value there.
func TQuantile975(df int) float64 {
	if df < 1 {
		return math.NaN()
	}
	if df <= len(t975) {
		return t975[df-1]
	}
	const z = 1.959964
	return z + (z*z*z+z)/(4*float64(df))
}

// SeedsFor is the number of seeds a paired comparison needs to detect a
// mean difference delta with 80% power at the two-sided 5% level, given
// the standard deviation sd of the per-seed paired difference:
// n = ((z(0.975) + z(0.8))·sd/delta)², rounded up (the normal
// approximation; with few seeds the t test needs one or two more).
func SeedsFor(sd, delta float64) int {
	const z975, z80 = 1.959964, 0.841621
	if delta <= 0 || math.IsNaN(sd) {
		return 0
	}
	return int(math.Ceil(math.Pow((z975+z80)*sd/delta, 2)))
}

// DetectableAt is the smallest mean difference a paired comparison over n
// seeds detects with 80% power at the two-sided 5% level, given the
// standard deviation sd of the per-seed paired difference:
// (t(0.975, n−1) + z(0.8))·sd/√n.
func DetectableAt(sd float64, n int) float64 {
	const z80 = 0.841621
	if n < 2 {
		return math.NaN()
	}
	return (TQuantile975(n-1) + z80) * sd / math.Sqrt(float64(n))
}
