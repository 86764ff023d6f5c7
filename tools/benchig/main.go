// Command benchig measures the cost of IG within a training iteration on the
// demo's warm-started policy, with the demo's RL settings: the same
// iterations run as IG-GRPO with prefix sharing, as IG-GRPO scoring every
// context whole, and as plain GRPO (no IG), one after the other in this
// process. It prints time_ig, time_total and ig_share per run, and IG-GRPO's
// iteration time over GRPO's (the paper's +6.4% figure).
//
//	go run ./tools/benchig --demo out/bench/ig-demo --iterations 4
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/igsearch/igsearch/pipeline/demo"
	"github.com/igsearch/igsearch/pipeline/train"
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
		}
		f.Close()
		if res.TimeTotal > 0 {
			res.IGShare = res.TimeIG / res.TimeTotal
		}
		out = append(out, res)
		js, _ := json.Marshal(res)
		fmt.Printf("RESULT %s\n", js)
	}
	fmt.Printf("ig: IG share of an iteration: %.1f%% with prefix sharing, %.1f%% without; IG-GRPO iteration / GRPO iteration = %.2f (sharing), %.2f (without); prefix sharing makes IG %.2fx faster\n",
		100*out[0].IGShare, 100*out[1].IGShare, out[0].TimeTotal/out[2].TimeTotal, out[1].TimeTotal/out[2].TimeTotal, out[1].TimeIG/out[0].TimeIG)
	return nil
}
