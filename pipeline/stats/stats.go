// Package stats holds the summary statistics that metrics, reports and
// benchmarks print: a mean with a population or a sample standard
// deviation, summed in input order so that a figure is the same in every
// place that prints it.
package stats

import "math"

// MeanStd returns the mean and the population standard deviation
// (divided by n) of xs; 0, 0 for no values. The metrics log uses it: a
// batch's trajectories are the whole population of that iteration.
func MeanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	mean = Mean(xs)
	return mean, math.Sqrt(sumSquares(xs, mean) / float64(len(xs)))
}

// MeanSampleStd returns the mean and the sample standard deviation
// (divided by n − 1) of xs, the spread of runs over seeds; the std of one
// value is 0, and no values give NaN, 0.
func MeanSampleStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return math.NaN(), 0
	}
	mean = Mean(xs)
	if len(xs) == 1 {
		return mean, 0
	}
	return mean, math.Sqrt(sumSquares(xs, mean) / float64(len(xs)-1))
}

// Mean is the arithmetic mean of xs, NaN for no values.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	m := 0.0
	for _, x := range xs {
		m += x
	}
	return m / float64(len(xs))
}

func sumSquares(xs []float64, mean float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += (x - mean) * (x - mean)
	}
	return s
}
