// Command benchdemo aggregates the report.json files of several demo runs
// (one per seed) into a Markdown table of test EM by hop type, mean ± std
// over seeds, for IG-GRPO and GRPO from the same warm start.
//
//	go run ./tools/benchdemo out/bench-demo/seed-*/report.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/igsearch/igsearch/pipeline/stats"
)

type score struct {
	N  int     `json:"n"`
	EM float64 `json:"em"`
}

type eval struct {
	BySource map[string]score `json:"by_source"`
	Overall  score            `json:"overall"`
}

type report struct {
	Before              *eval              `json:"Before"`
	IGGRPO              *eval              `json:"IGGRPO"`
	GRPO                *eval              `json:"GRPO"`
	AllFailGroups       float64            `json:"AllFailGroups"`
	AllFailWithGradient float64            `json:"AllFailWithGradient"`
	IGByKind            map[string]kindIG  `json:"IGByKind"`
	Seconds             map[string]float64 `json:"Seconds"`
}

type kindIG struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchdemo REPORT.json...")
		os.Exit(2)
	}
	var reps []report
	for _, path := range os.Args[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchdemo:", err)
			os.Exit(1)
		}
		var r report
		if err := json.Unmarshal(data, &r); err != nil {
			fmt.Fprintf(os.Stderr, "benchdemo: %s: %v\n", path, err)
			os.Exit(1)
		}
		reps = append(reps, r)
	}
	sources := map[string]bool{}
	for _, r := range reps {
		if r.Before != nil {
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
	get := func(e *eval, src string) (float64, bool) {
		if e == nil {
			return 0, false
		}
		if src == "all" {
			return e.Overall.EM, true
		}
		s, ok := e.BySource[src]
		return s.EM, ok
	}
	cell := func(pick func(report) *eval, src string) string {
		var xs []float64
		for _, r := range reps {
			if v, ok := get(pick(r), src); ok {
				xs = append(xs, v)
			}
		}
		m, sd := stats.MeanSampleStd(xs)
		return fmt.Sprintf("%.3f ± %.3f", m, sd)
	}
	fmt.Printf("Test EM by hop type, mean ± std over %d seeds:\n\n", len(reps))
	fmt.Println("| hop type | before RL (SFT) | IG-GRPO | GRPO | IG-GRPO − GRPO |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	for _, s := range names {
		var d []float64
		for _, r := range reps {
			a, ok1 := get(r.IGGRPO, s)
			b, ok2 := get(r.GRPO, s)
			if ok1 && ok2 {
				d = append(d, a-b)
			}
		}
		dm, dsd := stats.MeanSampleStd(d)
		fmt.Printf("| %s | %s | %s | %s | %+.3f ± %.3f |\n", s,
			cell(func(r report) *eval { return r.Before }, s),
			cell(func(r report) *eval { return r.IGGRPO }, s),
			cell(func(r report) *eval { return r.GRPO }, s), dm, dsd)
	}
	var fail, grad []float64
	kinds := map[string][]float64{}
	for _, r := range reps {
		fail = append(fail, r.AllFailGroups)
		grad = append(grad, r.AllFailWithGradient)
		for k, v := range r.IGByKind {
			kinds[k] = append(kinds[k], v.Mean)
		}
	}
	fm, _ := stats.MeanSampleStd(fail)
	gm, _ := stats.MeanSampleStd(grad)
	fmt.Printf("\nAll-fail groups during IG-GRPO: %.1f%%; of those, %.1f%% had a non-zero gradient (from the IG term).\n", 100*fm, 100*gm)
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	fmt.Println("\nMean IG of held-out expert queries under the warm-started policy (mean ± std over seeds):")
	fmt.Println()
	for _, k := range ks {
		m, sd := stats.MeanSampleStd(kinds[k])
		fmt.Printf("- %s: %+.3f ± %.3f\n", k, m, sd)
	}
}
