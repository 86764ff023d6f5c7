package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/igsearch/igsearch/pipeline/plot"
)

var plotStage = &stage{
	name:    "plot",
	summary: "PNG/SVG training curves from metrics.jsonl files",
	usage: `igsearch plot --metrics [LABEL=]FILE [--metrics ...] --out DIR

Draws the training curves of one or more runs on shared axes, one figure per
group of metrics: rewards (reward, em, format_rate, dev_em), information gain
(ig_mean, ig_pos_ratio, all_fail_groups, all_fail_with_gradient),
optimisation (loss, kl, clip_fraction, grad_norm), rollout shape (searches,
response_length) and timings (time_* per phase, ig_share).

Inputs:
  --metrics [LABEL=]FILE  a metrics.jsonl written by igsearch train;
                          repeatable; LABEL names the run in the legend
                          (default: the file's directory name)
Output:
  --out DIR               rewards.png/.svg, ig.png/.svg, optimisation.*,
                          rollout.*, timings.*; written atomically

Example:
  igsearch plot --metrics ig-grpo=out/demo/ig-grpo/metrics.jsonl \
    --metrics grpo=out/demo/grpo/metrics.jsonl --out out/demo/plots
`,
	run: runPlot,
}

func runPlot(args []string) error {
	fs := newFlags("plot")
	var metrics repeatedString
	fs.Var(&metrics, "metrics", "[LABEL=]metrics.jsonl (repeatable)")
	out := fs.String("out", "", "output directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case len(metrics) == 0:
		return usagef("--metrics is required")
	case *out == "":
		return usagef("--out is required")
	case fs.NArg() > 0:
		return usagef("unexpected arguments %v", fs.Args())
	}
	runs := map[string]string{}
	for _, m := range metrics {
		label, path, ok := strings.Cut(m, "=")
		if !ok {
			path, label = m, filepath.Base(filepath.Dir(m))
		}
		if _, dup := runs[label]; dup {
			return usagef("two runs are labelled %q; name them with LABEL=FILE", label)
		}
		runs[label] = path
	}
	paths, err := plot.Curves(runs, *out)
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	return nil
}
