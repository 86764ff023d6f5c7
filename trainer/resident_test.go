package trainer

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
)

// hostState is the trainer's state as it was before it became resident:
// weights, moments and gradients in Go memory.
type hostState struct {
	step         int64
	params, m, v map[string][]float32
}

// hostStep is the optimiser step of the host-state trainer (the code before
// the state became resident, kept here as the reference): every weight,
// gradient and moment in Go memory, bound to each run of tr's sessions as a
// Go tensor, gradients added in place, the norm's chunk sums added up on the
// host. It returns the gradient norm.
func hostStep(t *testing.T, tr *Trainer, st *hostState, b *Batch) float64 {
	t.Helper()
	tokens := 0.0
	for _, row := range b.LossMask {
		for _, m := range row {
			tokens += float64(m)
		}
	}
	scale := float32(1 / tokens)
	grads := map[string][]float32{}
	for _, p := range tr.art.Trainable {
		grads[p.Name] = make([]float32, numElements(p.Shape))
	}
	must := func(x *ort.Tensor, err error) *ort.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, mb := range tr.microBatches(b) {
		if !anyMasked(b.LossMask[mb.lo:mb.hi]) {
			continue
		}
		in, err := tr.batchInputs(b, mb, scale)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tr.art.Inputs() {
			in[p.Name] = must(ort.NewTensor(p.Shape, st.params[p.Name]))
		}
		out := ort.Outputs{}
		for _, p := range tr.art.Trainable {
			in[accumIn(p.Name)] = must(ort.NewTensor(p.Shape, grads[p.Name]))
			out[gradIn(p.Name)] = must(ort.NewTensor(p.Shape, grads[p.Name]))
		}
		if err := tr.grad.RunWith(in, out); err != nil {
			t.Fatal(err)
		}
		for _, x := range in {
			x.Destroy()
		}
		out.Destroy()
	}
	var sumSq float64
	err := tr.eachChunk(func(p Param, lo, hi int) error {
		x := must(ort.NewTensor([]int64{int64(hi - lo)}, grads[p.Name][lo:hi]))
		acc := must(ort.NewTensor(nil, []float64{0}))
		defer x.Destroy()
		defer acc.Destroy()
		out, err := tr.sumSq.Run(map[string]*ort.Tensor{optGrad: x, optAcc: acc})
		if err != nil {
			return err
		}
		defer out.Destroy()
		v, err := ort.Values[float64](out[optSumSq])
		sumSq += v[0]
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	norm := math.Sqrt(sumSq)
	st.step++
	scalars := map[string]*ort.Tensor{}
	for name, v := range optimScalars(tr.opts.Optim, st.step, clipCoef(tr.opts.Optim, norm)) {
		scalars[name] = must(ort.NewTensor(nil, []float32{v}))
		defer scalars[name].Destroy()
	}
	err = tr.eachChunk(func(p Param, lo, hi int) error {
		in, out := map[string]*ort.Tensor{}, ort.Outputs{}
		for name, x := range scalars {
			in[name] = x
		}
		shape := []int64{int64(hi - lo)}
		for _, b := range []struct {
			in, out string
			data    []float32
		}{{optParam, optNewP, st.params[p.Name][lo:hi]}, {optGrad, "", grads[p.Name][lo:hi]}, {optM, optNewM, st.m[p.Name][lo:hi]}, {optV, optNewV, st.v[p.Name][lo:hi]}} {
			in[b.in] = must(ort.NewTensor(shape, b.data))
			defer in[b.in].Destroy()
			if b.out != "" {
				out[b.out] = must(ort.NewTensor(shape, b.data))
			}
		}
		defer out.Destroy()
		return tr.adamw.RunWith(in, out)
	})
	if err != nil {
		t.Fatal(err)
	}
	return norm
}

// newHostState copies tr's starting state.
func newHostState(tr *Trainer) *hostState {
	st := &hostState{params: snapshot(tr.State().Params), m: map[string][]float32{}, v: map[string][]float32{}}
	for _, p := range tr.art.Trainable {
		st.m[p.Name] = make([]float32, numElements(p.Shape))
		st.v[p.Name] = make([]float32, numElements(p.Shape))
	}
	return st
}

// batchBytes is the size of b's inputs as the caller hands them to Step:
// input_ids and attention_mask (int64), and the per-token float32 arrays it
// carries (loss mask, advantages, old and reference log-probs).
func batchBytes(b *Batch) int64 {
	var n int64
	for r := range b.InputIDs {
		n += 8 * int64(len(b.InputIDs[r])+len(b.AttentionMask[r]))
		for _, m := range [][][]float32{b.LossMask, b.Advantages, b.OldLogprobs, b.RefLogprobs} {
			if len(m) > 0 {
				n += 4 * int64(len(m[r]))
			}
		}
	}
	return n
}

// TestResidentStateMatchesHostState runs three steps with the resident
// state and three with the host-state reference (hostStep) from the same
// start, for full fine-tuning and LoRA, with the model weights over the
// host-weight block (the CPU placement) and in ORT-allocated memory (a
// device's placement), micro-batched so that gradients accumulate and
// chunked so that the optimiser works on views: the weights agree within
// 1e-6. Per step, the meter sees only phase "train", and exactly the
// batch's gradient-graph inputs (ids, masks, rows, the loss inputs at those
// rows, loss_scale) plus AdamW's eight scalars going in, and the runs'
// metric sums plus the norm coming out: at most the batch's own bytes.
func TestResidentStateMatchesHostState(t *testing.T) {
	ck, f := loadFixture(t)
	loss, opt := f.Configs()
	defer func(c int) { optimChunk = c }(optimChunk)
	optimChunk = 1000
	lora := Options{Artifact: ArtifactOptions{Loss: loss, LoRA: &LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 3}}, Optim: opt, MicroBatch: 2}
	for _, v := range []struct {
		name string
		opts Options
	}{
		{"full, 30-token micro-batches", Options{Artifact: ArtifactOptions{Loss: loss}, Optim: opt, MicroBatchTokens: 30}},
		{"LoRA, 2-row micro-batches", lora},
	} {
		for _, alloc := range []bool{false, true} {
			name := v.name + ", weights on the block"
			if alloc {
				name = v.name + ", weights allocated"
			}
			t.Run(name, func(t *testing.T) {
				opts := v.opts
				opts.allocWeights = alloc
				tr, err := New(ck.Config, ck.Weights, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				if tr.res.onBlock == alloc {
					t.Fatalf("weights on the block: %v, want %v", tr.res.onBlock, !alloc)
				}
				ref, err := New(ck.Config, ck.Weights, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer ref.Close()
				host := newHostState(ref)
				b := f.Batch()
				var metricOutputs int64
				for _, o := range tr.grad.Outputs() {
					if !strings.HasPrefix(o.Name, gradIn("")) {
						metricOutputs++
					}
				}
				for step := 1; step <= 3; step++ {
					var fed, runs int64
					for _, mb := range tr.microBatches(b) {
						if !anyMasked(b.LossMask[mb.lo:mb.hi]) {
							continue
						}
						in, err := tr.batchInputs(b, mb, 1)
						if err != nil {
							t.Fatal(err)
						}
						for _, x := range in {
							fed += x.NumElements() * int64(x.DType().Size())
							x.Destroy()
						}
						runs++
					}
					before := ort.MeteredTransfers()
					m, err := tr.Step(b)
					if err != nil {
						t.Fatal(err)
					}
					d := ort.MeteredTransfers().Sub(before)
					norm := hostStep(t, ref, host, b)
					tr := d[PhaseTrain]
					if len(d) != 1 {
						t.Errorf("step %d: transfers in phases %v, want only %q", step, d.Phases(), PhaseTrain)
					}
					wantTo, wantFrom := fed+4*8, 4*metricOutputs*runs+8
					if tr.ToORT != wantTo || tr.FromORT != wantFrom {
						t.Errorf("step %d: %d bytes in, %d out; want the batch's %d + 32 of AdamW scalars in, %d metric sums + 8 of norm out", step, tr.ToORT, tr.FromORT, fed, 4*metricOutputs*runs)
					}
					if tr.Bytes() > batchBytes(b) {
						t.Errorf("step %d: %d bytes crossed, more than the batch's %d", step, tr.Bytes(), batchBytes(b))
					}
					t.Logf("step %d: %d bytes in (batch inputs %d), %d out, %d runs; batch %d bytes", step, tr.ToORT, fed, tr.FromORT, tr.Runs, batchBytes(b))
					if m.GradNorm != norm {
						t.Errorf("step %d: grad norm %v, host-state %v", step, m.GradNorm, norm)
					}
				}
				worst := 0.0
				for name, want := range host.params {
					got := tr.State().Params[name]
					for i := range want {
						worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
					}
				}
				if worst > 1e-6 {
					t.Errorf("after 3 steps: weights differ from the host-state trainer's by up to %g > 1e-6", worst)
				}
				t.Logf("after 3 steps: largest weight difference from the host-state trainer %g", worst)
			})
		}
	}
}

// TestResidentWeightsReachTheHost checks the ways the resident state
// leaves a trainer whose weights are allocated apart from the host-weight
// block (a device's placement): the block is behind after a step until
// Weights or HostWeights brings it up to date, moving the trainable weights
// once under phase "weights"; a checkpoint moves the weights and moments
// under phase "checkpoint", and resumes to the same state exactly.
func TestResidentWeightsReachTheHost(t *testing.T) {
	ck, f := loadFixture(t)
	loss, opt := f.Configs()
	opts := Options{Artifact: ArtifactOptions{Loss: loss, FreezeEmbeddings: true}, Optim: opt, allocWeights: true}
	tr, err := New(ck.Config, ck.Weights, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Step(f.Batch()); err != nil {
		t.Fatal(err)
	}
	var trainable, model int64
	for _, p := range tr.art.Trainable {
		trainable += 4 * numElements(p.Shape)
	}
	for _, p := range qwen2.Params(ck.Config) {
		model += 4 * numElements(p.Shape)
	}
	name := tr.art.Trainable[0].Name
	if tr.blockViews[name][0] == tr.State().Params[name][0] {
		t.Fatalf("%s: the block already has the step's update", name)
	}
	before := ort.MeteredTransfers()
	w := tr.Weights()
	tr.HostWeights()
	d := ort.MeteredTransfers().Sub(before)
	if got := d[PhaseWeights]; got.FromORT != trainable || got.Bytes() != d.Total().Bytes() {
		t.Errorf("bringing the block up to date moved %v, want %d bytes out under %q", d, trainable, PhaseWeights)
	}
	for _, p := range qwen2.Params(ck.Config) {
		got, want := w[p.Name].Floats(), tr.State().Params[p.Name]
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s[%d]: block %v, trained %v", p.Name, i, got[i], want[i])
			}
		}
	}

	dir := filepath.Join(t.TempDir(), "ckpt")
	before = ort.MeteredTransfers()
	if err := tr.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	d = ort.MeteredTransfers().Sub(before)
	if got := d[PhaseCheckpoint]; got.FromORT != model+2*trainable || got.Bytes() != d.Total().Bytes() {
		t.Errorf("saving moved %v, want %d bytes (weights and moments) out under %q", d, model+2*trainable, PhaseCheckpoint)
	}
	resumed, _, err := Resume(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	for _, x := range []struct {
		name      string
		got, want map[string][]float32
	}{{"weights", resumed.State().Params, tr.State().Params}, {"exp_avg", resumed.State().M, tr.State().M}, {"exp_avg_sq", resumed.State().V, tr.State().V}} {
		for name, want := range x.want {
			got := x.got[name]
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s %s[%d]: resumed %v, saved %v", x.name, name, i, got[i], want[i])
				}
			}
		}
	}
}
