package igscore

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/rollout"
	"github.com/igsearch/igsearch/pipeline/trajectory"
)

// handBuilt is a batch of two logged trajectories of one step each; with
// the batch pool, each step's only candidate counterfactual is the other's
// observation.
func handBuilt() []trajectory.Record {
	p := protocol.SearchR1()
	return []trajectory.Record{
		{ID: "a", GoldenAnswers: []string{"you can search as many", "Beijing"},
			Prompt:   rollout.PromptText(p, false, "where is Beijing"),
			Response: "<think> you lack some knowledge </think> <search> search engine </search>\n\n<information>Doc 1(Title: Beijing) you can search as many times</information>\n\n<answer> Beijing </answer>"},
		{ID: "b", GoldenAnswers: []string{"example"},
			Prompt:   rollout.PromptText(p, false, "what is new"),
			Response: "<search> new information </search>\n\n<information>Doc 1(Title: Question) for example answer</information>\n\n<think> first </think>\n<answer> example </answer>"},
	}
}

// TestScoreDirect checks the IG of the hand-built batch against contexts
// written out by hand, scored directly with policy.Score, and the weighted
// mean applied by hand.
func TestScoreDirect(t *testing.T) {
	tn := setup(t)
	tok := tn.pol.Tokenizer()
	recs := handBuilt()
	ctxA := recs[0].Prompt + "<think> you lack some knowledge </think>\n<search> search engine </search>\n"
	ctxB := recs[1].Prompt + "<search> new information </search>\n"
	obsA := "<information>Doc 1(Title: Beijing) you can search as many times</information>"
	obsB := "<information>Doc 1(Title: Question) for example answer</information>"
	logP := func(context, gold string) float64 {
		c, a := tok.Encode(context+"\n<answer> "), tok.Encode(gold)
		lp, err := tn.sharp.Score(context2(), [][]int32{append(append([]int32(nil), c...), a...)})
		if err != nil {
			t.Fatal(err)
		}
		ans := lp[0][len(c)-1:]
		// Weights 3 on the first 3 tokens, 1 after, normalised to mean 1.
		w := make([]float64, len(ans))
		sum := 0.0
		for i := range w {
			w[i] = 1
			if i < 3 {
				w[i] = 3
			}
			sum += w[i]
		}
		out := 0.0
		for i, x := range ans {
			out += float64(x) * w[i] * float64(len(ans)) / sum
		}
		return out / float64(len(ans))
	}
	realA, randA := logP(ctxA+obsA, "you can search as many"), logP(ctxA+obsB, "you can search as many")
	realB, randB := logP(ctxB+obsB, "example"), logP(ctxB+obsA, "example")
	for _, shared := range sharings {
		opts := shared.options(DefaultOptions())
		sc, err := New(tn.sharp, nil, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		res, st, err := sc.Score(context2(), recs, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := []ig.StepIG{{Step: 0, LogpReal: realA, LogpRandomMean: randA, IG: realA - randA},
			{Step: 0, LogpReal: realB, LogpRandomMean: randB, IG: realB - randB}}
		for i, r := range res {
			if len(r.Steps) != 1 {
				t.Fatalf("%s item %d: %d steps, want 1", shared, i, len(r.Steps))
			}
			g := r.Steps[0]
			if math.Abs(g.LogpReal-want[i].LogpReal) > 1e-4 || math.Abs(g.LogpRandomMean-want[i].LogpRandomMean) > 1e-4 ||
				math.Abs(g.IG-want[i].IG) > 1e-4 || math.Abs(r.Mean-want[i].IG) > 1e-4 {
				t.Errorf("%s item %d: got %+v, want %+v", shared, i, g, want[i])
			}
		}
		if st.Requests != 8 || st.Steps != 2 {
			t.Errorf("%s: stats %+v, want 8 requests over 2 steps", shared, st)
		}
		if math.Abs(res[0].Mean) < 1e-3 {
			t.Errorf("IG %v: too small to tell real from counterfactual", res[0].Mean)
		}
		t.Logf("%s: %+v IG %.5f %.5f", shared, st, res[0].Mean, res[1].Mean)
	}
}

func context2() context.Context { return context.Background() }

// sharing is one of the ways a Scorer shares context prefixes.
type sharing string

// sharings are the four: none first (every sequence whole, the
// reference), then KV forks, packed trees and the KV tree.
var sharings = []sharing{"whole", SharingFork, SharingPacked, SharingKV}

func (s sharing) options(o Options) Options {
	o.PrefixSharing = s != "whole"
	if o.PrefixSharing {
		o.Sharing = string(s)
	}
	return o
}

// TestPrefixSharingAgrees scores sampled rollouts of both protocols with
// and without prefix sharing; the last case truncates the contexts so much
// that some share no prefix, and scores two golds.
func TestPrefixSharingAgrees(t *testing.T) {
	tn := setup(t)
	for _, c := range []struct {
		p          protocol.Protocol
		maxContext int
	}{{protocol.SearchR1(), 4096}, {protocol.AutoRefine(), 4096}, {protocol.SearchR1(), 40}} {
		p := c.p
		t.Run(fmt.Sprintf("%s/%d", p.Name, c.maxContext), func(t *testing.T) {
			recs := rollouts(t, tn, p, 3, 3)
			for i := range recs {
				recs[i].GoldenAnswers = append(recs[i].GoldenAnswers, "Beijing")
			}
			out := make([][]ig.Result, len(sharings))
			times := make([]time.Duration, len(sharings))
			for i, shared := range sharings {
				opts := shared.options(DefaultOptions())
				opts.Protocol = p
				opts.IG.MaxContext, opts.IG.Gold = c.maxContext, ig.Gold{Best: 2}
				sc, err := New(tn.sharp, nil, nil, opts)
				if err != nil {
					t.Fatal(err)
				}
				res, st, err := sc.Score(context2(), recs, 5)
				if err != nil {
					t.Fatal(err)
				}
				out[i], times[i] = res, st.Time
				t.Logf("%s: %+v", shared, st)
			}
			steps := 0
			for j := 1; j < len(sharings); j++ {
				for i := range recs {
					a, b := out[0][i], out[j][i]
					if len(a.Steps) != len(b.Steps) {
						t.Fatalf("record %d: %d and %d steps", i, len(a.Steps), len(b.Steps))
					}
					for k := range a.Steps {
						steps++
						if math.Abs(a.Steps[k].IG-b.Steps[k].IG) > 1e-4 || math.Abs(a.Steps[k].LogpReal-b.Steps[k].LogpReal) > 1e-4 {
							t.Errorf("record %d step %d: %+v scored whole, %+v %s", i, k, a.Steps[k], b.Steps[k], sharings[j])
						}
					}
				}
			}
			if steps == 0 {
				t.Fatal("no step was scored")
			}
		})
	}
}

// TestCorpusCounterfactual draws counterfactual documents from the index.
func TestCorpusCounterfactual(t *testing.T) {
	tn := setup(t)
	recs := rollouts(t, tn, protocol.SearchR1(), 2, 2)
	opts := DefaultOptions()
	opts.IG.Counterfactual = ig.CounterfactualCorpus
	opts.TopK = 2
	if _, err := New(tn.pol, nil, nil, opts); err == nil {
		t.Error("corpus counterfactuals without an index: no error")
	}
	sc, err := New(tn.pol, nil, tn.ix, opts)
	if err != nil {
		t.Fatal(err)
	}
	reqs := 0
	res, st, err := sc.Score(context2(), recs, 9)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := 0
		for _, s := range recs[i].Parse(protocol.SearchR1()).Steps {
			if s.HasObservation(protocol.SearchR1()) {
				want++
			}
		}
		if len(r.Steps) != want {
			t.Errorf("record %d: %d scored steps, want %d", i, len(r.Steps), want)
		}
		for _, s := range r.Steps {
			if math.IsNaN(s.IG) || s.LogpReal > 0 || s.LogpRandomMean > 0 {
				t.Errorf("record %d: %+v", i, s)
			}
			reqs += 1 + opts.IG.Random
		}
	}
	if st.Requests != reqs || reqs == 0 {
		t.Errorf("%d requests, want %d (> 0)", st.Requests, reqs)
	}
}

// TestMaxContext checks that contexts are left-truncated.
func TestMaxContext(t *testing.T) {
	tn := setup(t)
	tok := tn.pol.Tokenizer()
	opts := DefaultOptions()
	opts.IG.MaxContext = 12
	sc, err := New(tn.pol, nil, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	req := ig.Request{Context: handBuilt()[0].Prompt + "\n<answer> ", Continuation: "Beijing"}
	got, _, err := sc.LogProbs(context2(), []ig.Request{req})
	if err != nil {
		t.Fatal(err)
	}
	c := tok.Encode(req.Context)
	seq := append(append([]int32(nil), c[len(c)-12:]...), tok.Encode("Beijing")...)
	lp, err := tn.pol.Score(context2(), [][]int32{seq})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0]) != 1 || math.Abs(float64(got[0][0]-lp[0][11])) > 1e-5 {
		t.Errorf("truncated log-prob %v, want %v", got[0], lp[0][11])
	}
}

// TestSharedWork checks the tokens and attended context that prefix-shared
// scoring reports on a hand-built tree, against the flat scoring's
// log-probs. A = [1 2 3 4 | 9] and B = [1 2 5 | 9 8] share [1 2]: position
// 0 runs once; the pending position 1 runs again in each fork; A's row runs
// 2 then 3 (its context's last) with 9 forced; B's runs 2, then 3 (B's 9).
// Tokens 1 + (2+1) + (1+2) = 7; attended 0 + (1+2) + 1 + 3 + (2+3) = 12.
// Packed trees are checked on the same pair.
func TestSharedWork(t *testing.T) {
	tn := setup(t)
	opts := DefaultOptions()
	opts.PrefixSharing = true
	sc, err := New(tn.sharp, nil, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	seqs := []sequence{{ids: []int32{1, 2, 3, 4, 9}, start: 4}, {ids: []int32{1, 2, 5, 9, 8}, start: 3}}
	lps, w, err := sc.scoreShared(context2(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	if w.tokens != 7 || w.attended != 12 {
		t.Errorf("shared: %d tokens, %d attended; want 7 and 12", w.tokens, w.attended)
	}
	flat, fw, err := sc.scoreFlat(context2(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	if fw.tokens != 10 || fw.attended != 20 {
		t.Errorf("flat: %d tokens, %d attended; want 10 and 20", fw.tokens, fw.attended)
	}
	// Packed: one row [1 2 3 4 5 9] at positions [0 1 2 3 2 3] (A's
	// answer is its last token, scored but not input): 6 tokens, 11
	// attended.
	packed, pw, err := sc.scorePacked(context2(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	if pw.tokens != 6 || pw.attended != 11 {
		t.Errorf("packed: %d tokens, %d attended; want 6 and 11", pw.tokens, pw.attended)
	}
	for i := range seqs {
		for k := range packed[i] {
			if math.Abs(float64(packed[i][k]-flat[i][k])) > 1e-5 {
				t.Errorf("sequence %d token %d: %v packed, %v flat", i, k, packed[i][k], flat[i][k])
			}
		}
		if len(lps[i]) != len(flat[i]) || len(packed[i]) != len(flat[i]) {
			t.Fatalf("sequence %d: %d, %d and %d log-probs", i, len(lps[i]), len(packed[i]), len(flat[i]))
		}
		for k := range lps[i] {
			if math.Abs(float64(lps[i][k]-flat[i][k])) > 1e-4 {
				t.Errorf("sequence %d token %d: %v shared, %v flat", i, k, lps[i][k], flat[i][k])
			}
		}
	}
}
