// Command benchig measures the cost of IG within a training iteration on the
// demo's warm-started policy, with the demo's RL settings: the same
// iterations run as IG-GRPO with prefix sharing, as IG-GRPO scoring every
// context whole, and as plain GRPO (no IG), one after the other in this
// process. It prints time_ig, time_total and ig_share per run, and IG-GRPO's
// iteration time over GRPO's (the paper's +6.4% figure).
//
// It then bounds IG's cost from below on this machine: the tokens IG ran per
// iteration, at the inference graph's best throughput on runs whose tokens
// attend to as many tokens on average (policy.ForwardRate), the best over
// batch shapes, both attention variants and both splits of the cores
// (threads per run × concurrent runs), with no forking, gathering or
// sampling around the runs. The shapes include prefills with no past, so
// that no cache is copied. A scheduling of IG's scoring that beat this floor
// would have to run ONNX Runtime faster than any of these runs do.
//
//	go run ./tools/benchig --demo out/bench/ig-demo --iterations 4
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/igsearch/igsearch/pipeline/demo"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/policy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchig:", err)
		os.Exit(1)
	}
}

type result struct {
	Name        string  `json:"name"`
	Iterations  int     `json:"iterations"`
	TimeIG      float64 `json:"time_ig_s"`
	TimeTotal   float64 `json:"time_total_s"`
	IGShare     float64 `json:"ig_share"`
	ScoredSteps int     `json:"ig_steps"`
	IGTokens    int     `json:"ig_tokens"`
	// IGContext is the mean context of IG's tokens, weighted by tokens.
	IGContext float64 `json:"ig_context"`
	// The median iteration's IG and total times, and their ratio: a few
	// iterations take seconds longer in training while ONNX Runtime's
	// arena grows for new shapes, which inflates the means.
	MedianIG      float64 `json:"median_ig_s"`
	MedianTotal   float64 `json:"median_total_s"`
	MedianIGShare float64 `json:"median_ig_share"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func run() error {
	dir := pflag.String("demo", "out/bench/ig-demo", "an igsearch demo output directory (world/, index/, model-sft/)")
	iters := pflag.Int("iterations", 4, "RL iterations per run")
	pflag.Parse()
	for _, p := range []string{"world/train.jsonl", "index", "model-sft/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(*dir, p)); err != nil {
			return fmt.Errorf("%s: run `igsearch demo --out %s` first: %w", *dir, *dir, err)
		}
	}
	base := demo.Default().RL
	base.Retriever.Index = filepath.Join(*dir, "index")
	base.Data.Train = filepath.Join(*dir, "world", "train.jsonl")
	base.Data.Dev = ""
	base.Model.Path = filepath.Join(*dir, "model-sft")
	base.Train.Iterations = *iters
	base.Train.Seed = 1
	runs := []struct {
		name, algo string
		sharing    bool
	}{
		// Unmeasured: the same iterations as the next run, so that ONNX
		// Runtime's arena has grown for their shapes before any is timed.
		{"warm-up (ig-grpo, prefix sharing)", "ig-grpo", true},
		{"ig-grpo, prefix sharing", "ig-grpo", true},
		{"ig-grpo, every context whole", "ig-grpo", false},
		{"grpo (no IG)", "grpo", false},
	}
	var out []result
	for i, r := range runs {
		c := base
		c.IG.Algo, c.IG.PrefixSharing = r.algo, r.sharing
		c.Train.Out = filepath.Join(*dir, fmt.Sprintf("benchig-%d", i))
		if err := os.RemoveAll(c.Train.Out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "benchig: %s, %d iterations\n", r.name, *iters)
		if _, err := train.Run(context.Background(), c, nil); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		res := result{Name: r.name}
		f, err := os.Open(filepath.Join(c.Train.Out, train.MetricsFile))
		if err != nil {
			return err
		}
		var igs, totals []float64
		dec := json.NewDecoder(f)
		for dec.More() {
			var m train.Metrics
			if err := dec.Decode(&m); err != nil {
				f.Close()
				return err
			}
			res.Iterations++
			res.TimeIG += m.TimeIG
			res.TimeTotal += m.TimeTotal
			res.ScoredSteps += m.IGSteps
			res.IGTokens += m.IGTokens
			res.IGContext += m.IGContext * float64(m.IGTokens)
			igs, totals = append(igs, m.TimeIG), append(totals, m.TimeTotal)
		}
		res.MedianIG, res.MedianTotal = median(igs), median(totals)
		if res.MedianTotal > 0 {
			res.MedianIGShare = res.MedianIG / res.MedianTotal
		}
		if res.IGTokens > 0 {
			res.IGContext /= float64(res.IGTokens)
		}
		f.Close()
		if res.TimeTotal > 0 {
			res.IGShare = res.TimeIG / res.TimeTotal
		}
		js, _ := json.Marshal(res)
		if i == 0 {
			fmt.Printf("WARMUP %s\n", js)
			continue
		}
		out = append(out, res)
		fmt.Printf("RESULT %s\n", js)
	}
	fmt.Printf("ig: IG share of an iteration: %.1f%% with prefix sharing, %.1f%% without (median iteration: %.1f%%, %.1f%%); IG-GRPO iteration / GRPO iteration = %.2f (sharing), %.2f (without) (median: %.2f, %.2f); prefix sharing makes IG %.2fx faster\n",
		100*out[0].IGShare, 100*out[1].IGShare, 100*out[0].MedianIGShare, 100*out[1].MedianIGShare,
		out[0].TimeTotal/out[2].TimeTotal, out[1].TimeTotal/out[2].TimeTotal, out[0].MedianTotal/out[2].MedianTotal, out[1].MedianTotal/out[2].MedianTotal,
		out[1].TimeIG/out[0].TimeIG)
	return floor(base.Model.Path, out[0], out[2])
}

// floor measures the least IG could cost per iteration on this machine
// (see the package comment) and prints it as a share of an iteration: GRPO's
// iteration time plus the floor.
func floor(model string, shared, grpo result) error {
	if shared.Iterations == 0 || shared.IGTokens == 0 || grpo.Iterations == 0 {
		return fmt.Errorf("floor: no IG tokens or no GRPO iteration to compare with")
	}
	tokens := shared.IGTokens / shared.Iterations
	cores := runtime.NumCPU()
	type try struct {
		attention        string
		threads, workers int
		shape            policy.RateShape
		perToken         time.Duration
	}
	var best *try
	for _, attn := range []string{"standard", "contrib"} {
		for _, split := range [][2]int{{1, cores}, {cores, 1}} { // threads per run, concurrent runs
			pol, err := policy.Open(model, policy.Options{Attention: attn, Threads: split[0]})
			if err != nil {
				return err
			}
			var shapes []policy.RateShape
			for _, w := range []int{8, 16, 32, 64, 128, 256} {
				// A token at past+j attends to past+j tokens: the mean is
				// past + (w−1)/2.
				past := max(0, int(math.Round(shared.IGContext-float64(w-1)/2)))
				for _, rows := range []int{1, 4, 16} {
					if attn == "contrib" && rows > 1 {
						continue // GroupQueryAttention: one row per multi-token run on a past
					}
					shapes = append(shapes, policy.RateShape{Rows: rows, Past: past, New: w})
				}
			}
			// Prefills with no past whose tokens attend to as many tokens
			// on average: no cache is copied into the present one.
			for _, rows := range []int{1, 2, 4, 8} {
				shapes = append(shapes, policy.RateShape{Rows: rows, Past: 0, New: 2*int(math.Round(shared.IGContext)) + 1})
			}
			for _, sh := range shapes {
				// The best of two measurements: the floor errs low.
				var d time.Duration
				for rep := range 2 {
					r, err := pol.ForwardRate(context.Background(), sh, split[1], tokens)
					if err != nil {
						pol.Close()
						return fmt.Errorf("floor: %s %+v: %w", attn, sh, err)
					}
					if rep == 0 || r < d {
						d = r
					}
				}
				t := try{attn, split[0], split[1], sh, d}
				fmt.Fprintf(os.Stderr, "benchig: floor: %s attention, %d thread(s) × %d run(s), %d rows × %d new on %d cached: %.2f µs/token\n",
					attn, split[0], split[1], sh.Rows, sh.New, sh.Past, float64(d.Nanoseconds())/1e3)
				if best == nil || d < best.perToken {
					best = &t
				}
			}
			pol.Close()
		}
	}
	floorIG := float64(tokens) * best.perToken.Seconds()
	grpoIter, grpoMedian := grpo.TimeTotal/float64(grpo.Iterations), grpo.MedianTotal
	budget := 0.03 / 0.97 * grpoIter
	share, medianShare := floorIG/(grpoIter+floorIG), floorIG/(grpoMedian+floorIG)
	js, _ := json.Marshal(struct {
		Tokens      int     `json:"ig_tokens_per_iteration"`
		Context     float64 `json:"ig_context"`
		PerToken    float64 `json:"best_us_per_token"`
		Attention   string  `json:"attention"`
		Threads     int     `json:"threads"`
		Runs        int     `json:"runs"`
		Rows        int     `json:"rows"`
		Past        int     `json:"past"`
		New         int     `json:"new"`
		FloorIG     float64 `json:"floor_ig_s"`
		GRPOIter    float64 `json:"grpo_iteration_s"`
		FloorShare  float64 `json:"floor_share"`
		Budget      float64 `json:"budget_3pct_s"`
		GRPOMedian  float64 `json:"grpo_median_iteration_s"`
		MedianShare float64 `json:"floor_share_median"`
	}{tokens, shared.IGContext, float64(best.perToken.Nanoseconds()) / 1e3, best.attention, best.threads, best.workers,
		best.shape.Rows, best.shape.Past, best.shape.New, floorIG, grpoIter, share, budget, grpoMedian, medianShare})
	fmt.Printf("FLOOR %s\n", js)
	fmt.Printf("ig floor: IG ran %d tokens per iteration (mean context %.0f); at ONNX Runtime's best rate on this machine for that context (%.2f µs/token: %s attention, %d thread(s) × %d run(s), %d rows × %d new tokens) that is %.3f s, %.1f%% of an iteration (mean GRPO iteration %.2f s + the floor; %.1f%% of the median one, %.2f s); IG measured %.3f s per iteration (%.1f%%; median iteration %.1f%%); 3%% of the mean iteration allows %.3f s\n",
		tokens, shared.IGContext, float64(best.perToken.Nanoseconds())/1e3, best.attention, best.threads, best.workers, best.shape.Rows, best.shape.New,
		floorIG, 100*share, grpoIter, 100*medianShare, grpoMedian,
		shared.TimeIG/float64(shared.Iterations), 100*shared.IGShare, 100*shared.MedianIGShare, budget)
	return nil
}
