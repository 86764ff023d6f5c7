package demo

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Summary writes the one-screen summary a researcher would quote: test EM
// before and after each algorithm, with paired 95% confidence intervals over
// the test questions (one seed: they say how sure the comparison is on
// these questions, not across seeds); the train reward trend and the dev EM
// curve; the IG of expert queries by kind before and after RL; the all-fail
// groups; and the time of each stage.
func (r *Report) Summary(w io.Writer) {
	n := 0
	if r.Before != nil {
		n = r.Before.Overall.N
	}
	fmt.Fprintf(w, "== summary: seed %d, %d RL iterations per algorithm, %d test questions (greedy EM)\n", r.Seed, r.Iterations, n)
	r.Table(w)
	if q := r.TestEM; q != nil && len(q.Before) > 1 {
		fmt.Fprintln(w, "Paired differences over the test questions (mean ± 95% CI, this seed):")
		pair := func(name string, a, b []float64) {
			if len(a) == len(b) && len(a) > 1 {
				m, h := CI95(diffs(a, b))
				fmt.Fprintf(w, "  %-18s %+.3f ± %.3f\n", name, m, h)
			}
		}
		pair("IG-GRPO − before", q.IGGRPO, q.Before)
		pair("GRPO − before", q.GRPO, q.Before)
		pair("IG-GRPO − GRPO", q.IGGRPO, q.GRPO)
		if len(q.IGGRPO) == len(q.Before) && len(q.GRPO) == len(q.Before) {
			var a, b []float64
			for i, x := range q.Before {
				if x == 0 {
					a, b = append(a, q.IGGRPO[i]), append(b, q.GRPO[i])
				}
			}
			if len(a) > 1 {
				m, h := CI95(diffs(a, b))
				fmt.Fprintf(w, "  on the %d questions the warm start fails: IG-GRPO %.3f, GRPO %.3f, difference %+.3f ± %.3f\n",
					len(a), mean(a), mean(b), m, h)
			}
		}
	}
	algos := r.algos()
	if len(r.Trend) > 0 {
		fmt.Fprintln(w, "Train reward (mean of the first → last quarter of iterations) and dev EM (iterations done: EM):")
		for _, a := range algos {
			t, ok := r.Trend[a]
			if !ok {
				continue
			}
			first, last := quarters(t.Reward)
			var dev []string
			for i := range t.DevEM {
				dev = append(dev, fmt.Sprintf("%d: %.2f", t.DevIter[i], t.DevEM[i]))
			}
			line := fmt.Sprintf("  %-8s reward %.3f → %.3f", a, first, last)
			if len(dev) > 0 {
				line += "   dev " + strings.Join(dev, ", ")
			}
			fmt.Fprintln(w, line)
		}
	}
	r.queryMixSummary(w, algos)
	if len(r.IGByKind) > 0 {
		kinds := sortedKeys(r.IGByKind)
		fmt.Fprintf(w, "IG of %d held-out expert queries by kind (mean nats):\n  %-12s", r.igN(), "policy")
		for _, k := range kinds {
			fmt.Fprintf(w, " %10s", k)
		}
		fmt.Fprintln(w)
		row := func(name string, m map[string]KindIG) {
			fmt.Fprintf(w, "  %-12s", name)
			for _, k := range kinds {
				fmt.Fprintf(w, " %+10.3f", m[k].Mean)
			}
			fmt.Fprintln(w)
		}
		row("warm start", r.IGByKind)
		for _, a := range algos {
			if m, ok := r.IGAfter[a]; ok {
				row("after "+a, m)
			}
		}
	}
	if r.IGGRPO != nil {
		fmt.Fprintf(w, "All-fail groups in IG-GRPO: %.1f%%, of which %.1f%% still had a non-zero gradient (the IG term)\n",
			100*r.AllFailGroups, 100*r.AllFailWithGradient)
	}
	var parts []string
	for _, k := range []string{"world", "index", "sft", "eval_before", "ig-grpo", "grpo"} {
		if s, ok := r.Seconds[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0fs", k, s))
		}
	}
	if s, ok := r.Seconds["rl"]; ok {
		parts = append(parts, fmt.Sprintf("the two RL runs at once %.0fs", s))
	}
	fmt.Fprintf(w, "Time: %s; total %.0fs\n", strings.Join(parts, ", "), r.TotalSeconds())
}

// TotalSeconds is the time of the timed stages, with the RL runs counted
// once where they ran at once (Seconds["rl"]).
func (r *Report) TotalSeconds() float64 {
	_, atOnce := r.Seconds["rl"]
	var total float64
	for k, s := range r.Seconds {
		if atOnce && (k == "ig-grpo" || k == "grpo") {
			continue
		}
		total += s
	}
	return total
}

// algos are the RL runs in the report, IG-GRPO first.
func (r *Report) algos() []string {
	var out []string
	for _, a := range []string{"ig-grpo", "grpo"} {
		_, trend := r.Trend[a]
		if trend || (a == "ig-grpo" && r.IGGRPO != nil) || (a == "grpo" && r.GRPO != nil) {
			out = append(out, a)
		}
	}
	return out
}

// igN is the number of expert queries scored (all kinds).
func (r *Report) igN() int {
	n := 0
	for _, v := range r.IGByKind {
		n += v.N
	}
	return n
}

func diffs(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

func mean(xs []float64) float64 {
	m, _ := CI95(xs)
	return m
}

// Quarters are the first and the last quarter of a run's per-iteration
// values (at least one value each; both empty for none): what the summary
// and bench-demo compare to show a trend.
func Quarters[T any](xs []T) (first, last []T) {
	k := min(len(xs), max(1, len(xs)/4))
	return xs[:k], xs[len(xs)-k:]
}

// quarters are the means of the first and the last quarter of xs.
func quarters(xs []float64) (first, last float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	f, l := Quarters(xs)
	return mean(f), mean(l)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// queryMixSummary prints, for each run, the kinds of the queries its
// policy wrote in the first and the last quarter of its iterations.
func (r *Report) queryMixSummary(w io.Writer, algos []string) {
	header := false
	for _, a := range algos {
		q := r.Trend[a].Queries
		if len(q) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "Queries the policy wrote in its rollouts, share by kind (first → last quarter of iterations):")
			header = true
		}
		f, l := Quarters(q)
		first, last := QueryShares(f), QueryShares(l)
		var parts []string
		for _, kind := range QueryKinds {
			parts = append(parts, fmt.Sprintf("%s %.2f → %.2f", kind, first[kind], last[kind]))
		}
		fmt.Fprintf(w, "  %-8s %s\n", a, strings.Join(parts, ", "))
	}
}
