package trainer

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

const fixtureDir = "../testdata/models/tiny-qwen2"

func initORT(t testing.TB) {
	t.Helper()
	if _, err := ort.InitDefault(os.Getenv(ort.LibraryEnv), ort.Device{}); err != nil {
		t.Fatalf("%v (run `make setup`)", err)
	}
}

// loadFixture returns the tiny model and the reference GRPO step.
func loadFixture(t *testing.T) (*qwen2.Checkpoint, *StepFile) {
	t.Helper()
	initORT(t)
	ck, err := qwen2.LoadCheckpoint(fixtureDir, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	f, err := ReadStepFile(fixtureDir + "/grpo-step/grpo_step.json")
	if err != nil {
		t.Fatal(err)
	}
	return ck, f
}

// TestGRPOStepParity reproduces one GRPO step of PyTorch (autograd,
// clip_grad_norm_, torch.optim.AdamW) on the tiny-qwen2 fixture: the loss,
// the grad norm before clipping, the clip fraction and every updated weight.
//
// The variants run the same step as the whole batch at once, one row per
// gradient run (gradients accumulated in place over four runs), and with
// per-layer recomputation, micro-batches of at most 30 tokens (two of them
// with their all-padding columns dropped) and AdamW over 1000-element
// chunks (the embedding alone is 66 of them).
func TestGRPOStepParity(t *testing.T) {
	defer func(c int) { optimChunk = c }(optimChunk)
	for mb, v := range []struct {
		name  string
		opts  Options
		chunk int
	}{
		{"whole batch", Options{}, 1 << 18},
		{"one row per run", Options{MicroBatch: 1}, 1 << 18},
		{"recompute, 30-token micro-batches, chunked AdamW", Options{MicroBatchTokens: 30, Artifact: ArtifactOptions{Recompute: true}}, 1000},
	} {
		ck, f := loadFixture(t)
		loss, opt := f.Configs()
		opts := v.opts
		opts.Artifact.Loss, opts.Optim = loss, opt
		optimChunk = v.chunk
		tr, err := New(ck.Config, ck.Weights, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(tr.microBatches(f.Batch())); v.opts.MicroBatchTokens > 0 && got != 4 {
			t.Errorf("%s: %d micro-batches, want 4", v.name, got)
		}
		t.Logf("micro-batch variant %d: %s", mb, v.name)
		before := map[string][]float32{}
		for k, v := range tr.State().Params {
			before[k] = append([]float32(nil), v...)
		}
		m, err := tr.Step(f.Batch())
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close() // its weights are read below
		ref := readFixtureFloat(t, fixtureDir+"/grpo-step/grpo_step.json")
		relClose(t, "loss", m.Loss, ref["loss"], 2e-5)
		relClose(t, "grad_norm", m.GradNorm, ref["grad_norm_before_clip"], 2e-5)
		if math.Abs(m.ClipFraction-ref["clip_fraction"]) > 1e-9 {
			t.Errorf("micro-batch %d: clip_fraction %v, want %v", mb, m.ClipFraction, ref["clip_fraction"])
		}
		after, err := safetensors.Open(fixtureDir + "/grpo-step/after_step.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		var uNum, uDen float64
		for name, got := range tr.State().Params {
			_, want, err := after.Float32s(name)
			if err != nil {
				t.Fatalf("after_step %s: %v", name, err)
			}
			var maxAbs, dNum, dDen float64
			for i := range want {
				maxAbs = math.Max(maxAbs, math.Abs(float64(got[i]-want[i])))
				du := float64(got[i]-before[name][i]) - float64(want[i]-before[name][i])
				dNum += du * du
				wu := float64(want[i] - before[name][i])
				dDen += wu * wu
			}
			uNum += dNum
			uDen += dDen
			if maxAbs > 2e-4 {
				t.Errorf("micro-batch %d: %s: max |after − ref| = %.3g > 2e-4", mb, name, maxAbs)
			}
			t.Logf("micro-batch %d: %s: max abs %.2g, update rel L2 %.2g", mb, name, maxAbs, math.Sqrt(dNum/dDen))
		}
		// The update is compared as one vector: k_proj's bias has an exactly
		// zero gradient in exact arithmetic (a per-query constant under the
		// softmax), so its Adam update is rounding noise in both
		// implementations and cannot match tensor by tensor.
		if rel := math.Sqrt(uNum / uDen); rel > 1e-3 {
			t.Errorf("micro-batch %d: update relative L2 error %.3g > 1e-3", mb, rel)
		} else {
			t.Logf("micro-batch %d: update relative L2 error %.3g", mb, rel)
		}
		after.Close()
		t.Logf("micro-batch %d: loss %.8g grad_norm %.8g clip_fraction %.6g", mb, m.Loss, m.GradNorm, m.ClipFraction)
	}
}

func relClose(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*math.Abs(want) {
		t.Errorf("%s = %.9g, want %.9g (rel err %.3g > %g)", name, got, want, math.Abs(got-want)/math.Abs(want), tol)
	}
}

func readFixtureFloat(t *testing.T, path string) map[string]float64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

// TestRecomputeSameGradients checks that per-layer recomputation changes no
// gradient: the GRPO fixture's gradients with and without it agree to
// float32 rounding (the recomputed forward repeats the same operations on
// the same inputs).
func TestRecomputeSameGradients(t *testing.T) {
	ck, f := loadFixture(t)
	loss, opt := f.Configs()
	b := f.Batch()
	grads := map[bool]map[string][]float32{}
	for _, rc := range []bool{false, true} {
		tr, err := New(ck.Config, ck.Weights, Options{Artifact: ArtifactOptions{Loss: loss, Recompute: rc}, Optim: opt})
		if err != nil {
			t.Fatal(err)
		}
		g := map[string][]float32{}
		for _, p := range tr.art.Trainable {
			g[p.Name] = make([]float32, numElements(p.Shape))
		}
		out, err := tr.runGradInto(b, microBatch{0, len(b.InputIDs), 0}, 1/41.0, g)
		if err != nil {
			t.Fatal(err)
		}
		out.Destroy()
		tr.Close()
		grads[rc] = g
	}
	worst := 0.0
	for name, want := range grads[false] {
		got := grads[true][name]
		scale := 0.0
		for _, x := range want {
			scale = math.Max(scale, math.Abs(float64(x)))
		}
		for i := range want {
			d := math.Abs(float64(got[i]-want[i])) / (scale + 1e-12)
			worst = math.Max(worst, d)
			if d > 1e-5 {
				t.Fatalf("%s[%d]: recomputed %g, stored %g", name, i, got[i], want[i])
			}
		}
	}
	t.Logf("worst difference relative to each tensor's largest gradient: %.2g", worst)
}

// TestMicroBatchPlan checks the token-budget split of the GRPO fixture (4
// rows of 20 columns, left padding 0, 3, 0, 6) by hand: at 30 tokens no two
// rows fit together (2 × 20 > 30), so each row runs alone without its
// padding; at 40, rows 0+1 and 2+3 pair up, each pair keeping the columns
// its least padded row needs; with MicroBatch 1 as well, rows run alone.
func TestMicroBatchPlan(t *testing.T) {
	_, f := loadFixture(t)
	b := f.Batch()
	for _, c := range []struct {
		rows, tokens int
		want         []microBatch
	}{
		{0, 30, []microBatch{{0, 1, 0}, {1, 2, 3}, {2, 3, 0}, {3, 4, 6}}},
		{0, 40, []microBatch{{0, 2, 0}, {2, 4, 0}}},
		{1, 40, []microBatch{{0, 1, 0}, {1, 2, 3}, {2, 3, 0}, {3, 4, 6}}},
		{2, 0, []microBatch{{0, 2, 0}, {2, 4, 0}}},
	} {
		tr := &Trainer{opts: Options{MicroBatch: c.rows, MicroBatchTokens: c.tokens}}
		if got := tr.microBatches(b); !slices.Equal(got, c.want) {
			t.Errorf("micro-batch %d, tokens %d: %v, want %v", c.rows, c.tokens, got, c.want)
		}
	}
}
