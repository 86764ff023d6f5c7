// Package plot draws training curves from metrics.jsonl files and the IG
// distribution by query kind, as PNG and SVG, with gonum.org/v1/plot.
package plot

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/igsearch/igsearch/atomicfile"
)

// Groups are the figures Curves draws: a title and the metrics it shows.
var Groups = []struct {
	Name, Title string
	Fields      []string
}{
	{"rewards", "Rewards", []string{"reward", "em", "format_rate", "dev_em"}},
	{"ig", "Information gain", []string{"ig_mean", "ig_std", "ig_pos_ratio", "ig_steps", "all_fail_groups", "all_fail_with_gradient"}},
	{"optimisation", "Optimisation", []string{"loss", "kl", "clip_fraction", "grad_norm", "entropy", "lr"}},
	{"rollout", "Rollout shape", []string{"searches", "response_length"}},
	{"timings", "Seconds per phase", []string{"time_rollout", "time_ig", "time_ref", "time_train", "time_total", "ig_share"}},
}

// series is one run's values of every numeric field, indexed by iteration.
type series map[string]plotter.XYs

// ReadMetrics reads a metrics.jsonl: every numeric field against "iter".
func ReadMetrics(path string) (series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := series{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		iter, ok := row["iter"].(float64)
		if !ok {
			return nil, fmt.Errorf("%s: line %d: no numeric \"iter\"", path, line)
		}
		for k, v := range row {
			if x, ok := v.(float64); ok && k != "iter" {
				out[k] = append(out[k], plotter.XY{X: iter + 1, Y: x})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Curves writes one PNG and one SVG per group of metrics, every run (label →
// metrics.jsonl) on the same axes, and returns the written paths.
func Curves(runs map[string]string, outDir string) ([]string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	labels := make([]string, 0, len(runs))
	data := map[string]series{}
	for label, path := range runs {
		s, err := ReadMetrics(path)
		if err != nil {
			return nil, err
		}
		labels = append(labels, label)
		data[label] = s
	}
	sort.Strings(labels)
	var written []string
	for _, g := range Groups {
		var panels []*plot.Plot
		for _, field := range g.Fields {
			p := plot.New()
			p.Title.Text = field
			p.X.Label.Text = "iteration"
			p.X.Tick.Marker = integerTicks{}
			n := 0
			for i, label := range labels {
				xy := data[label][field]
				if len(xy) == 0 {
					continue
				}
				l, err := plotter.NewLine(xy)
				if err != nil {
					return nil, err
				}
				l.Color = plotutil.Color(i)
				l.Width = vg.Points(1.5)
				p.Add(l)
				p.Legend.Add(label, l)
				n++
			}
			if n > 0 {
				p.Legend.Top = true
				flatAxis(p)
				panels = append(panels, p)
			}
		}
		if len(panels) == 0 {
			continue
		}
		for _, ext := range []string{"png", "svg"} {
			path := filepath.Join(outDir, g.Name+"."+ext)
			if err := saveGrid(panels, g.Title, path); err != nil {
				return nil, err
			}
			written = append(written, path)
		}
	}
	return written, nil
}

// integerTicks puts about five labelled ticks on whole iterations, at a
// step of 1, 2 or 5 times a power of ten (plot.DefaultTicks would label an
// iteration axis 2.5, 12.5, …).
type integerTicks struct{}

func (integerTicks) Ticks(min, max float64) []plot.Tick {
	step := 1.0
	for p := 1.0; step < (max-min)/5; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if step = m * p; step >= (max-min)/5 {
				break
			}
		}
	}
	var out []plot.Tick
	for v := math.Ceil(min/step) * step; v <= max; v += step {
		out = append(out, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return out
}

// flatAxis widens the y axis of a panel whose values are all equal around
// that value (gonum pads it to ±1, which draws a constant lr of 1e-4 as 0).
func flatAxis(p *plot.Plot) {
	if p.Y.Min != p.Y.Max {
		return
	}
	v := p.Y.Min
	d := math.Abs(v) / 2
	if d == 0 {
		d = 1
	}
	p.Y.Min, p.Y.Max = v-d, v+d
}

// saveGrid lays panels out in two columns and writes them atomically.
func saveGrid(panels []*plot.Plot, title, path string) error {
	cols := 2
	if len(panels) == 1 {
		cols = 1
	}
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		p.Title.Text = title + ": " + p.Title.Text
		grid[i/cols][i%cols] = p
	}
	w, h := vg.Length(cols)*4*vg.Inch, vg.Length(rows)*3*vg.Inch
	c, err := newCanvas(path, w, h)
	if err != nil {
		return err
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	dc := draw.New(c)
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for col, p := range grid[r] {
			if p != nil {
				p.Draw(canvases[r][col])
			}
		}
	}
	return writeAtomic(c, path)
}

func newCanvas(path string, w, h vg.Length) (vg.CanvasWriterTo, error) {
	switch filepath.Ext(path) {
	case ".png":
		return vgimg.PngCanvas{Canvas: vgimg.New(w, h)}, nil
	case ".svg":
		return vgsvg.New(w, h), nil
	}
	return nil, fmt.Errorf("plot %s: want a .png or .svg file", path)
}

// writeAtomic writes the canvas to path, atomically.
func writeAtomic(c vg.CanvasWriterTo, path string) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := c.WriteTo(w); return err }); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// IGByKind writes a box plot of IG values by query kind (precise, vague,
// redundant, …) to outPath (.png or .svg).
func IGByKind(values map[string][]float64, outPath string) error {
	p := plot.New()
	p.Title.Text = "IG of search steps by query kind"
	p.Y.Label.Text = "IG (nats)"
	kinds := make([]string, 0, len(values))
	for k := range values {
		if len(values[k]) > 0 {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return fmt.Errorf("plot %s: no IG values", outPath)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		b, err := plotter.NewBoxPlot(vg.Points(30), float64(i), plotter.Values(values[k]))
		if err != nil {
			return err
		}
		b.FillColor = color.RGBA{R: 120, G: 160, B: 220, A: 255}
		p.Add(b)
	}
	p.NominalX(kinds...)
	c, err := newCanvas(outPath, 5*vg.Inch, 4*vg.Inch)
	if err != nil {
		return err
	}
	p.Draw(draw.New(c))
	return writeAtomic(c, outPath)
}

// SeedBands writes one figure of learning curves over seeds (.png or
// .svg): for each label (an algorithm), the mean over its seeds at each x
// as a line, and a band of ± one sample standard deviation around it
// (where at least two seeds have a value at that x). runs maps a label to
// one curve per seed.
func SeedBands(runs map[string][]plotter.XYs, title, ylabel, outPath string) error {
	labels := make([]string, 0, len(runs))
	for label := range runs {
		labels = append(labels, label)
	}
	sort.Strings(labels)
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "iteration"
	p.Y.Label.Text = ylabel
	p.X.Tick.Marker = integerTicks{}
	n := 0
	for i, label := range labels {
		mean, lo, hi := bandOf(runs[label])
		if len(mean) == 0 {
			continue
		}
		c := plotutil.Color(i)
		if len(lo) > 1 {
			band := append(plotter.XYs{}, lo...)
			for j := len(hi) - 1; j >= 0; j-- {
				band = append(band, hi[j])
			}
			poly, err := plotter.NewPolygon(band)
			if err != nil {
				return err
			}
			r, g, b, _ := c.RGBA()
			poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 60}
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
		l, err := plotter.NewLine(mean)
		if err != nil {
			return err
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%d seeds)", label, len(runs[label])), l)
		n++
	}
	if n == 0 {
		return fmt.Errorf("plot %s: no curves", outPath)
	}
	p.Legend.Top = true
	flatAxis(p)
	c, err := newCanvas(outPath, 6*vg.Inch, 4*vg.Inch)
	if err != nil {
		return err
	}
	p.Draw(draw.New(c))
	return writeAtomic(c, outPath)
}

// bandOf is the mean of the curves at every x any of them has, and the
// mean ± sample standard deviation at the x where two or more have one.
func bandOf(curves []plotter.XYs) (mean, lo, hi plotter.XYs) {
	at := map[float64][]float64{}
	for _, c := range curves {
		for _, pt := range c {
			at[pt.X] = append(at[pt.X], pt.Y)
		}
	}
	xs := make([]float64, 0, len(at))
	for x := range at {
		xs = append(xs, x)
	}
	sort.Float64s(xs)
	for _, x := range xs {
		ys := at[x]
		var m float64
		for _, y := range ys {
			m += y
		}
		m /= float64(len(ys))
		mean = append(mean, plotter.XY{X: x, Y: m})
		if len(ys) > 1 {
			var ss float64
			for _, y := range ys {
				ss += (y - m) * (y - m)
			}
			sd := math.Sqrt(ss / float64(len(ys)-1))
			lo, hi = append(lo, plotter.XY{X: x, Y: m - sd}), append(hi, plotter.XY{X: x, Y: m + sd})
		}
	}
	return mean, lo, hi
}
