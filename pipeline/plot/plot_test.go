package plot

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

func writeMetrics(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCurvesAndIGByKind(t *testing.T) {
	dir := t.TempDir()
	a := writeMetrics(t, dir, "a.jsonl",
		`{"iter":0,"reward":0.1,"em":0.1,"ig_mean":0.5,"loss":0.02,"searches":2,"time_rollout":1.5}`,
		`{"iter":1,"reward":0.2,"em":0.2,"ig_mean":0.7,"loss":0.01,"searches":2.5,"time_rollout":1.4}`)
	b := writeMetrics(t, dir, "b.jsonl",
		`{"iter":0,"reward":0.1,"em":0.1,"loss":0.03,"searches":2,"time_rollout":1.2}`,
		`{"iter":1,"reward":0.15,"em":0.15,"loss":0.02,"searches":2.2,"time_rollout":1.1}`)
	out := filepath.Join(dir, "plots")
	paths, err := Curves(map[string]string{"ig-grpo": a, "grpo": b}, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 8 {
		t.Fatalf("wrote %d files: %v", len(paths), paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(p) {
		case ".png":
			if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 5000 {
				t.Errorf("%s is not a plausible PNG (%d bytes)", p, len(data))
			}
		case ".svg":
			if !bytes.Contains(data, []byte("<svg")) || !bytes.Contains(data, []byte("ig-grpo")) {
				t.Errorf("%s lacks an <svg> root or the legend", p)
			}
		}
	}
	ig := filepath.Join(out, "ig_by_kind.png")
	if err := IGByKind(map[string][]float64{"precise": {1, 2, 3, 2.5}, "vague": {-1, 0, 0.5, 0.2}}, ig); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(ig); err != nil || st.Size() < 5000 {
		t.Errorf("ig_by_kind.png: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestMalformedMetrics(t *testing.T) {
	dir := t.TempDir()
	bad := writeMetrics(t, dir, "bad.jsonl", `{"iter":0,"em":0.1}`, `{"iter":1,"em":`)
	_, err := Curves(map[string]string{"x": bad}, filepath.Join(dir, "out"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "bad.jsonl") {
		t.Fatalf("err = %v, want one naming bad.jsonl line 2", err)
	}
}

func TestIntegerTicks(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		want     []float64
	}{
		{0, 23, []float64{0, 5, 10, 15, 20}},
		{1, 3, []float64{1, 2, 3}},
		{0.5, 9.5, []float64{2, 4, 6, 8}},
		{0, 480, []float64{0, 100, 200, 300, 400}},
	} {
		var got []float64
		for _, tk := range (integerTicks{}).Ticks(c.min, c.max) {
			got = append(got, tk.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("ticks of [%v, %v] = %v, want %v", c.min, c.max, got, c.want)
		}
	}
}

// TestSeedBands checks the band by hand: seeds (1, 3) and (3, 5) at x = 1,
// 2 give means 2 and 4 and a sample std of √2; a third seed's lone point
// at x = 3 gets a mean but no band.
func TestSeedBands(t *testing.T) {
	mean, lo, hi := bandOf([]plotter.XYs{{{X: 1, Y: 1}, {X: 2, Y: 3}}, {{X: 1, Y: 3}, {X: 2, Y: 5}, {X: 3, Y: 7}}})
	if len(mean) != 3 || mean[0].Y != 2 || mean[1].Y != 4 || mean[2].Y != 7 {
		t.Errorf("mean %v, want 2, 4, 7", mean)
	}
	if len(lo) != 2 || math.Abs(hi[0].Y-lo[0].Y-2*math.Sqrt2) > 1e-12 || math.Abs(lo[1].Y-(4-math.Sqrt2)) > 1e-12 {
		t.Errorf("band lo %v hi %v, want ±√2 at x = 1, 2", lo, hi)
	}
	out := filepath.Join(t.TempDir(), "reward.png")
	runs := map[string][]plotter.XYs{
		"grpo":    {{{X: 1, Y: 0.1}, {X: 2, Y: 0.2}}, {{X: 1, Y: 0.2}, {X: 2, Y: 0.3}}},
		"ig-grpo": {{{X: 1, Y: 0.1}, {X: 2, Y: 0.25}}, {{X: 1, Y: 0.15}, {X: 2, Y: 0.35}}},
	}
	if err := SeedBands(runs, "train reward", "reward", out); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err != nil || st.Size() < 5000 {
		t.Errorf("reward.png: %v", err)
	}
}
