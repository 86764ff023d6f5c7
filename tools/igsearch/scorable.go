package main

import (
	"fmt"
	"strings"

	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/trajectory"
)

// scoreIGChecks are score-ig's checks against silent results.
type scoreIGChecks struct {
	skipBad bool   // skip and count unscorable rows instead of failing
	model   string // the policy's directory, to name the source of a NaN
}

// scoreIGCounts are the rows score-ig scored and skipped.
type scoreIGCounts struct {
	scored, skipped int
	lines           []int // the first skipped lines, for the message
}

func (c *scoreIGCounts) skip(line int) {
	c.skipped++
	if len(c.lines) < 10 {
		c.lines = append(c.lines, line)
	}
}

// skippedLines lists the skipped lines: "lines 3, 7 and 2 more".
func (c *scoreIGCounts) skippedLines() string {
	parts := make([]string, len(c.lines))
	for i, l := range c.lines {
		parts[i] = fmt.Sprint(l)
	}
	s := "lines " + strings.Join(parts, ", ")
	if more := c.skipped - len(c.lines); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// unscorable says why a trajectory has no IG to compute ("" if it has):
// without a response there are no search steps, and without a non-empty
// gold answer there is no continuation to score, so either would come out
// as no steps or an all-zero IG that looks like a result.
func unscorable(r *trajectory.Record) string {
	if strings.TrimSpace(r.Response) == "" {
		return `no "response"`
	}
	for _, g := range r.GoldenAnswers {
		if strings.TrimSpace(g) != "" {
			return ""
		}
	}
	return "every golden answer is empty"
}

// finite checks a row's IG values, naming the step and the source of a NaN
// or Inf (non-finite weights, or the forward pass).
func (c scoreIGChecks) finite(res ig.Result) error {
	for _, s := range res.Steps {
		for _, v := range []struct {
			name string
			x    float64
		}{{"logp_real", s.LogpReal}, {"logp_random_mean", s.LogpRandomMean}, {"ig", s.IG}} {
			if !finite(v.x) {
				return nonFiniteError(fmt.Sprintf("step %d: %s", s.Step, v.name), v.x, c.model)
			}
		}
	}
	if !finite(res.Mean) {
		return nonFiniteError("ig_mean", res.Mean, c.model)
	}
	return nil
}
