package demo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
)

// TestReducedDemo runs the demo on a small world with short runs and checks
// that the stages connect: the SFT loss falls, and the EM table is produced.
func TestReducedDemo(t *testing.T) {
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.CPU); err != nil {
		t.Fatalf("%v (run `make setup`)", err)
	}
	cfg := Reduced()
	cfg.Out = filepath.Join(t.TempDir(), "demo")
	rep, err := Run(context.Background(), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SFTLoss[1] >= rep.SFTLoss[0]*0.7 {
		t.Errorf("SFT loss %.3f → %.3f: not lower", rep.SFTLoss[0], rep.SFTLoss[1])
	}
	var b strings.Builder
	rep.Table(&b)
	t.Log("\n" + b.String())
	if !strings.Contains(b.String(), "single-hop") || rep.Before == nil || rep.IGGRPO == nil || rep.GRPO == nil {
		t.Errorf("incomplete report:\n%s", b.String())
	}
	for _, algo := range []string{"ig-grpo", "grpo"} {
		q := rep.Trend[algo].Queries
		if len(q) != cfg.RL.Train.Iterations {
			t.Errorf("%s: query kinds for %d iterations, want %d", algo, len(q), cfg.RL.Train.Iterations)
		}
		for i, m := range q {
			if n := m[QueryPrecise] + m[QueryVague] + m[QueryRedundant] + m[QueryOffChain]; n == 0 || len(m) > len(QueryKinds) {
				t.Errorf("%s iteration %d: query kinds %v", algo, i, m)
			}
		}
	}
	t.Logf("IG by kind: %+v; seconds %+v", rep.IGByKind, rep.Seconds)
}
