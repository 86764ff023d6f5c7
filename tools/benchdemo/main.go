// Command benchdemo aggregates the report.json files of several demo runs
// (one per seed) into a Markdown report: test EM by hop type with 95%
// confidence intervals over seeds, IG-GRPO against GRPO as a paired
// difference (each seed's two runs share a world and a warm start), the
// power of that comparison, the hard subset the warm start fails, the IG of
// expert queries by kind before and after RL, and learning curves of both
// algorithms with seed bands.
//
//	go run ./tools/benchdemo [--plots DIR] out/bench-demo/seed-*/report.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot/plotter"

	"github.com/igsearch/igsearch/pipeline/demo"
	"github.com/igsearch/igsearch/pipeline/plot"
	"github.com/igsearch/igsearch/pipeline/train"
)

// delta is the EM difference the bench is sized to detect.
const delta = 0.02

func main() {
	plots := flag.String("plots", "", "directory for the learning-curve plots (empty: none)")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: benchdemo [--plots DIR] REPORT.json...")
		os.Exit(2)
	}
	var reps []demo.Report
	for _, path := range flag.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		var r demo.Report
		if err := json.Unmarshal(data, &r); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		reps = append(reps, r)
	}
	emTable(reps)
	power(reps)
	hardSubset(reps)
	trends(reps)
	igByKind(reps)
	if *plots != "" {
		if err := curves(reps, *plots); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchdemo:", err)
	os.Exit(1)
}

// ci formats a mean and its 95% half-width over seeds.
func ci(xs []float64) string { return formatCI(xs, "%.3f") }

// signed is ci for differences: the mean with its sign.
func signed(xs []float64) string { return formatCI(xs, "%+.3f") }

// formatCI writes the mean of xs with meanVerb, then "± half-width" when
// there are seeds enough for one.
func formatCI(xs []float64, meanVerb string) string {
	if len(xs) == 0 {
		return "–"
	}
	m, h := demo.CI95(xs)
	if math.IsNaN(h) {
		return fmt.Sprintf(meanVerb, m)
	}
	return fmt.Sprintf(meanVerb+" ± %.3f", m, h)
}

func em(e *train.EvalResult, src string) (float64, bool) {
	if e == nil {
		return 0, false
	}
	if src == "all" {
		return e.Overall.EM, true
	}
	s, ok := e.BySource[src]
	return s.EM, ok
}

// column is one figure of every seed that has it.
func column(reps []demo.Report, pick func(demo.Report) (float64, bool)) []float64 {
	var xs []float64
	for _, r := range reps {
		if v, ok := pick(r); ok {
			xs = append(xs, v)
		}
	}
	return xs
}

func emTable(reps []demo.Report) {
	sources := map[string]bool{}
	n := 0
	for _, r := range reps {
		if r.Before != nil {
			n = r.Before.Overall.N
			for s := range r.Before.BySource {
				sources[s] = true
			}
		}
	}
	var names []string
	for s := range sources {
		names = append(names, s)
	}
	sort.Strings(names)
	names = append(names, "all")
	fmt.Printf("Test EM by hop type (%d test questions a seed), mean ± 95%% CI over %d seeds (t interval); the differences are paired by seed:\n\n", n, len(reps))
	fmt.Println("| hop type | before RL (SFT) | IG-GRPO | GRPO | IG-GRPO − before | GRPO − before | IG-GRPO − GRPO |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, s := range names {
		get := func(pick func(demo.Report) *train.EvalResult) func(demo.Report) (float64, bool) {
			return func(r demo.Report) (float64, bool) { return em(pick(r), s) }
		}
		diff := func(a, b func(demo.Report) *train.EvalResult) []float64 {
			return column(reps, func(r demo.Report) (float64, bool) {
				x, ok1 := em(a(r), s)
				y, ok2 := em(b(r), s)
				return x - y, ok1 && ok2
			})
		}
		before := func(r demo.Report) *train.EvalResult { return r.Before }
		ig := func(r demo.Report) *train.EvalResult { return r.IGGRPO }
		grpo := func(r demo.Report) *train.EvalResult { return r.GRPO }
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", s,
			ci(column(reps, get(before))), ci(column(reps, get(ig))), ci(column(reps, get(grpo))),
			signed(diff(ig, before)), signed(diff(grpo, before)), signed(diff(ig, grpo)))
	}
	fmt.Println("\nPer seed (all hop types):")
	fmt.Println()
	fmt.Println("| seed | SFT loss at the end | before RL | IG-GRPO | GRPO | IG-GRPO − GRPO | all-fail groups (IG-GRPO) | seconds |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range reps {
		secs := r.TotalSeconds()
		b, _ := em(r.Before, "all")
		a, _ := em(r.IGGRPO, "all")
		g, _ := em(r.GRPO, "all")
		fmt.Printf("| %d | %.3f | %.3f | %.3f | %.3f | %+.3f | %.1f%% | %.0f |\n", r.Seed, r.SFTLoss[1], b, a, g, a-g, 100*r.AllFailGroups, secs)
	}
}

// power states what this many seeds can detect, from the measured
// standard deviation of the per-seed paired difference IG-GRPO − GRPO.
func power(reps []demo.Report) {
	d := column(reps, func(r demo.Report) (float64, bool) {
		a, ok1 := em(r.IGGRPO, "all")
		b, ok2 := em(r.GRPO, "all")
		return a - b, ok1 && ok2
	})
	if len(d) < 2 {
		fmt.Println("\nPower: needs two or more seeds with both runs.")
		return
	}
	m, h := demo.CI95(d)
	var ss float64
	for _, x := range d {
		ss += (x - m) * (x - m)
	}
	sd := math.Sqrt(ss / float64(len(d)-1))
	fmt.Printf("\nPower (paired by seed, two-sided 5%%, 80%% power): the per-seed difference IG-GRPO − GRPO has std %.4f over %d seeds,\n", sd, len(d))
	fmt.Printf("so detecting a difference of %.2f EM needs n = ((1.960 + 0.842)·%.4f/%.2f)² ≈ %d seed(s); these %d seeds detect %.3f.\n",
		delta, sd, delta, demo.SeedsFor(sd, delta), len(d), demo.DetectableAt(sd, len(d)))
	fmt.Printf("Paired t: mean %+.4f, 95%% CI [%+.4f, %+.4f], t = %.2f, df = %d.\n", m, m-h, m+h, m/(sd/math.Sqrt(float64(len(d)))), len(d)-1)
	// The per-seed difference varies with training (the seed's world, warm
	// start and samples) and with which test questions were drawn. The
	// second part is var(d_i)/n over a seed's n per-question differences;
	// what is left is training's, which more test questions do not shrink.
	var vq []float64
	n := 0
	for _, r := range reps {
		q := r.TestEM
		if q == nil || len(q.IGGRPO) != len(q.Before) || len(q.GRPO) != len(q.Before) || len(q.Before) < 2 {
			continue
		}
		_, hq := demo.CI95(diffsOf(q.IGGRPO, q.GRPO))
		se := hq / demo.TQuantile975(len(q.Before)-1)
		vq = append(vq, se*se)
		n = len(q.Before)
	}
	if len(vq) == 0 {
		return
	}
	varQ := mean(vq)
	varT := math.Max(0, sd*sd-varQ)
	fmt.Printf("Of the variance %.6f, test-question sampling (%d questions a seed, from the per-question differences) is %.6f, training %.6f;\n", sd*sd, n, varQ, varT)
	for _, k := range []int{1, 4} {
		sdk := math.Sqrt(varT + varQ/float64(k))
		fmt.Printf("  with %d test questions a seed: std %.4f, %d seed(s) for %.2f\n", k*n, sdk, demo.SeedsFor(sdk, delta), delta)
	}
}

func diffsOf(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

// hardSubset compares the algorithms on the test questions the warm start
// answers wrongly (greedy EM 0): questions on which a group sampled from
// the warm start mostly fails, where GRPO's outcome reward has the least to
// say and IG-GRPO's IG term the most.
func hardSubset(reps []demo.Report) {
	var ig, grpo, d []float64
	n := 0
	for _, r := range reps {
		q := r.TestEM
		if q == nil || len(q.IGGRPO) != len(q.Before) || len(q.GRPO) != len(q.Before) {
			continue
		}
		var a, b []float64
		for i, x := range q.Before {
			if x == 0 {
				a, b = append(a, q.IGGRPO[i]), append(b, q.GRPO[i])
			}
		}
		if len(a) == 0 {
			continue
		}
		ma, mb := mean(a), mean(b)
		ig, grpo, d = append(ig, ma), append(grpo, mb), append(d, ma-mb)
		n += len(a)
	}
	if len(d) == 0 {
		return
	}
	fmt.Printf("\nHard subset: the test questions the warm start fails (%d question-seeds over %d seeds): EM after IG-GRPO %s, after GRPO %s, IG-GRPO − GRPO %s (paired by seed).\n",
		n, len(d), ci(ig), ci(grpo), signed(d))
}

func mean(xs []float64) float64 {
	m, _ := demo.CI95(xs)
	return m
}

// trends is each algorithm's train reward in the first and last quarter of
// its iterations, and its dev EM at the warm start and at the end.
func trends(reps []demo.Report) {
	fmt.Println("\nTrain reward (mean of the first → last quarter of iterations) and dev EM (warm start → end), mean ± 95% CI over seeds:")
	fmt.Println()
	for _, algo := range []string{"ig-grpo", "grpo"} {
		var first, last, gain, dev0, dev1 []float64
		for _, r := range reps {
			t, ok := r.Trend[algo]
			if !ok || len(t.Reward) == 0 {
				continue
			}
			fq, lq := demo.Quarters(t.Reward)
			f, l := mean(fq), mean(lq)
			first, last, gain = append(first, f), append(last, l), append(gain, l-f)
			if len(t.DevEM) > 1 && t.DevIter[0] == 0 {
				dev0, dev1 = append(dev0, t.DevEM[0]), append(dev1, t.DevEM[len(t.DevEM)-1])
			}
		}
		if len(first) == 0 {
			continue
		}
		fmt.Printf("- %s: reward %s → %s (gain %s)", algo, ci(first), ci(last), signed(gain))
		if len(dev0) > 0 {
			fmt.Printf("; dev EM %s → %s", ci(dev0), ci(dev1))
		}
		fmt.Println()
	}
	queryMix(reps)
	var fail, grad []float64
	for _, r := range reps {
		if r.IGGRPO != nil {
			fail, grad = append(fail, r.AllFailGroups), append(grad, r.AllFailWithGradient)
		}
	}
	if len(fail) > 0 {
		fmt.Printf("\nAll-fail groups during IG-GRPO: %.1f%%; of those, %.1f%% had a non-zero gradient (from the IG term).\n", 100*mean(fail), 100*mean(grad))
	}
}

// queryMix is each algorithm's share of each query kind in its rollouts,
// first and last quarter of its iterations.
func queryMix(reps []demo.Report) {
	header := false
	for _, algo := range []string{"ig-grpo", "grpo"} {
		first, last := map[string][]float64{}, map[string][]float64{}
		for _, r := range reps {
			q := r.Trend[algo].Queries
			if len(q) == 0 {
				continue
			}
			fq, lq := demo.Quarters(q)
			f, l := demo.QueryShares(fq), demo.QueryShares(lq)
			for _, kind := range demo.QueryKinds {
				first[kind], last[kind] = append(first[kind], f[kind]), append(last[kind], l[kind])
			}
		}
		if len(first[demo.QueryPrecise]) == 0 {
			continue
		}
		if !header {
			fmt.Println("\nQueries the policy wrote in its rollouts, share by kind (first → last quarter of iterations), mean ± 95% CI over seeds:")
			fmt.Println()
			header = true
		}
		var parts []string
		for _, kind := range demo.QueryKinds {
			parts = append(parts, fmt.Sprintf("%s %s → %s", kind, ci(first[kind]), ci(last[kind])))
		}
		fmt.Printf("- %s: %s\n", algo, strings.Join(parts, "; "))
	}
}

// igByKind is the mean IG of the held-out expert queries by kind under the
// warm start and under each trained policy.
func igByKind(reps []demo.Report) {
	kinds := map[string]bool{}
	for _, r := range reps {
		for k := range r.IGByKind {
			kinds[k] = true
		}
	}
	if len(kinds) == 0 {
		return
	}
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	fmt.Println("\nMean IG (nats) of the held-out expert queries by kind, mean ± 95% CI over seeds:")
	fmt.Println()
	fmt.Print("| policy |")
	for _, k := range ks {
		fmt.Printf(" %s |", k)
	}
	fmt.Print("\n| --- |")
	for range ks {
		fmt.Print(" --- |")
	}
	fmt.Println()
	row := func(name string, pick func(demo.Report) map[string]demo.KindIG) {
		fmt.Printf("| %s |", name)
		for _, k := range ks {
			fmt.Printf(" %s |", signed(column(reps, func(r demo.Report) (float64, bool) {
				m := pick(r)
				v, ok := m[k]
				return v.Mean, ok
			})))
		}
		fmt.Println()
	}
	row("warm start", func(r demo.Report) map[string]demo.KindIG { return r.IGByKind })
	row("after IG-GRPO", func(r demo.Report) map[string]demo.KindIG { return r.IGAfter["ig-grpo"] })
	row("after GRPO", func(r demo.Report) map[string]demo.KindIG { return r.IGAfter["grpo"] })
}

// curves plots both algorithms' train reward and dev EM over iterations,
// mean ± std over seeds.
func curves(reps []demo.Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	reward := map[string][]plotter.XYs{}
	dev := map[string][]plotter.XYs{}
	for _, r := range reps {
		for algo, t := range r.Trend {
			var xy plotter.XYs
			for i, v := range t.Reward {
				xy = append(xy, plotter.XY{X: float64(i + 1), Y: v})
			}
			reward[algo] = append(reward[algo], xy)
			if len(t.DevEM) > 0 {
				var d plotter.XYs
				for i, v := range t.DevEM {
					d = append(d, plotter.XY{X: float64(t.DevIter[i]), Y: v})
				}
				dev[algo] = append(dev[algo], d)
			}
		}
	}
	var written []string
	for _, ext := range []string{"png", "svg"} {
		p := filepath.Join(dir, "reward_by_seed."+ext)
		if err := plot.SeedBands(reward, "Train reward (mean ± std over seeds)", "reward (EM of sampled rollouts)", p); err != nil {
			return err
		}
		written = append(written, p)
		if len(dev) > 0 {
			p := filepath.Join(dir, "dev_em_by_seed."+ext)
			if err := plot.SeedBands(dev, "Dev EM, greedy (mean ± std over seeds)", "dev EM", p); err != nil {
				return err
			}
			written = append(written, p)
		}
	}
	fmt.Println("\nLearning curves with seed bands:")
	for _, p := range written {
		fmt.Println("-", p)
	}
	return nil
}
