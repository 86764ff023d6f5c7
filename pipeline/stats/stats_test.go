package stats

import (
	"math"
	"testing"
)

// Hand-worked: xs = 2, 4, 4, 4, 5, 5, 7, 9 has mean 5, squared deviations
// 9+1+1+1+0+0+4+16 = 32: population std √(32/8) = 2, sample std √(32/7).
func TestMeanStdHandWorked(t *testing.T) {
	xs := []float64{2, 4, 4, 4, 5, 5, 7, 9}
	if m, s := MeanStd(xs); m != 5 || s != 2 {
		t.Errorf("MeanStd = %v, %v; want 5, 2", m, s)
	}
	if m, s := MeanSampleStd(xs); m != 5 || math.Abs(s-math.Sqrt(32.0/7)) > 1e-15 {
		t.Errorf("MeanSampleStd = %v, %v; want 5, %v", m, s, math.Sqrt(32.0/7))
	}
	if m, s := MeanStd(nil); m != 0 || s != 0 {
		t.Errorf("MeanStd(nil) = %v, %v; want 0, 0", m, s)
	}
	if m, s := MeanSampleStd(nil); !math.IsNaN(m) || s != 0 {
		t.Errorf("MeanSampleStd(nil) = %v, %v; want NaN, 0", m, s)
	}
	if m, s := MeanSampleStd([]float64{3}); m != 3 || s != 0 {
		t.Errorf("MeanSampleStd(3) = %v, %v; want 3, 0", m, s)
	}
}
