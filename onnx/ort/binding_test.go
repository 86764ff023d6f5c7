package ort_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// stepGraph is y = 2·x + 1 over a dynamic-length vector, standing in for a
// run whose output feeds the next run (a KV cache).
func stepGraph(t *testing.T) *ort.Session {
	t.Helper()
	g := onnx.NewGraph("step")
	x := g.Input("x", onnx.Float, onnx.Sym("n"))
	g.Output("y", g.Add(g.Mul(x, g.Scalar(onnx.Float, 2)), g.Scalar(onnx.Float, 1)))
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestBindingChainsORTOwnedOutputs runs three steps that pass ORT-owned
// outputs from run to run: only the first input and the last read cross the
// boundary, as the meter counts them.
func TestBindingChainsORTOwnedOutputs(t *testing.T) {
	s := stepGraph(t)
	ctx := ort.WithPhase(context.Background(), "test-chain")
	before := ort.MeteredTransfers()
	host := tensor(t, []int64{4}, []float32{0, 1, 2, 3})
	defer host.Destroy()
	x, err := s.Upload(ctx, "x", host)
	if err != nil {
		t.Fatal(err)
	}
	if !x.ORTOwned() || x.OnDevice() {
		t.Fatalf("uploaded tensor: ORT-owned %v, on device %v; want ORT-owned host memory on the CPU", x.ORTOwned(), x.OnDevice())
	}
	for step := range 3 {
		b, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Input("x", x); err != nil {
			t.Fatal(err)
		}
		if err := b.OutputInPlace("y"); err != nil {
			t.Fatal(err)
		}
		out, err := b.Run(ctx)
		b.Close()
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		x.Destroy()
		x = out["y"]
		if !x.ORTOwned() {
			t.Fatalf("step %d: output in Go memory", step)
		}
	}
	got, err := ort.Values[float32](x)
	x.Destroy()
	if err != nil {
		t.Fatal(err)
	}
	// x → 2x+1 three times is 8x + 7.
	if want := []float32{7, 15, 23, 31}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	d := ort.MeteredTransfers().Sub(before)["test-chain"]
	if want := (ort.Transfer{Runs: 3, ToORT: 16, FromORT: 16}); d != want {
		t.Fatalf("meter %+v, want %+v (one upload, one read)", d, want)
	}
}

// TestRunContextCountsEveryTensor checks that the plain path, whose
// tensors all live in Go memory, charges its inputs and outputs.
func TestRunContextCountsEveryTensor(t *testing.T) {
	s := stepGraph(t)
	ctx := ort.WithPhase(context.Background(), "test-plain")
	before := ort.MeteredTransfers()
	in := tensor(t, []int64{3}, []float32{1, 2, 3})
	defer in.Destroy()
	out := ort.Outputs{}
	if err := s.RunContext(ctx, map[string]*ort.Tensor{"x": in}, out); err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	if got := values[float32](t, out["y"]); !slices.Equal(got, []float32{3, 5, 7}) {
		t.Fatalf("got %v", got)
	}
	d := ort.MeteredTransfers().Sub(before)["test-plain"]
	if want := (ort.Transfer{Runs: 1, ToORT: 12, FromORT: 12}); d != want {
		t.Fatalf("meter %+v, want %+v", d, want)
	}
}

// TestBindingPreboundAndCopy binds a Go-memory output (counted) and copies
// between ORT-owned tensors (not counted).
func TestBindingPreboundAndCopy(t *testing.T) {
	s := stepGraph(t)
	ctx := ort.WithPhase(context.Background(), "test-copy")
	before := ort.MeteredTransfers()
	a, err := s.Alloc("x", onnx.Float, []int64{2})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	src := tensor(t, []int64{2}, []float32{5, 6})
	defer src.Destroy()
	if err := ort.Copy(ctx, a, src); err != nil {
		t.Fatal(err)
	}
	c, err := s.Alloc("x", onnx.Float, []int64{2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	if err := ort.Copy(ctx, c, a); err != nil {
		t.Fatal(err)
	}
	res := make([]float32, 2)
	y := tensor(t, []int64{2}, res)
	defer y.Destroy()
	b, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Input("x", c); err != nil {
		t.Fatal(err)
	}
	if err := b.Output("y", y); err != nil {
		t.Fatal(err)
	}
	out, err := b.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Fatalf("pre-bound output returned again: %v", out)
	}
	if !slices.Equal(res, []float32{11, 13}) {
		t.Fatalf("got %v", res)
	}
	d := ort.MeteredTransfers().Sub(before)["test-copy"]
	if want := (ort.Transfer{Runs: 1, ToORT: 8, FromORT: 8}); d != want {
		t.Fatalf("meter %+v, want %+v", d, want)
	}
}

func TestBindingErrors(t *testing.T) {
	s := stepGraph(t)
	a, err := s.Alloc("x", onnx.Float, []int64{2})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	if _, err := s.Run(map[string]*ort.Tensor{"x": a}); err == nil || !strings.Contains(err.Error(), "Binding") {
		t.Errorf("plain run of an ORT-owned input: %v", err)
	}
	if _, err := s.Alloc("nope", onnx.Float, []int64{1}); err == nil || !strings.Contains(err.Error(), `unknown input "nope"`) {
		t.Errorf("alloc for an unknown input: %v", err)
	}
	b, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	i := tensor(t, []int64{2}, []int64{1, 2})
	defer i.Destroy()
	if err := b.Input("x", i); err == nil || !strings.Contains(err.Error(), "int64") {
		t.Errorf("binding an int64 to a float input: %v", err)
	}
	if _, err := b.Run(context.Background()); err == nil {
		t.Error("run with an unbound input succeeded")
	}
}

// TestInitializersFromORTOwnedTensors gives a graph's weight from an
// ORT-owned tensor (as a trainer's resident weights are given to a rollout
// policy): the session computes with the tensor's data, not the graph's.
func TestInitializersFromORTOwnedTensors(t *testing.T) {
	probe := stepGraph(t) // only for an allocator of host ORT memory
	w, err := probe.Alloc("x", onnx.Float, []int64{3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Destroy()
	src := tensor(t, []int64{3}, []float32{10, 20, 30})
	defer src.Destroy()
	if err := ort.Copy(context.Background(), w, src); err != nil {
		t.Fatal(err)
	}
	g := onnx.NewGraph("weighted")
	x := g.Input("x", onnx.Float, onnx.D(3))
	stale := &onnx.Tensor{DType: onnx.Float, Dims: []int64{3}, Raw: onnx.FloatBytes([]float32{1, 1, 1})}
	g.Output("y", g.Mul(x, g.Initializer("w", stale)))
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1, Initializers: map[string]*ort.Tensor{"w": w}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := tensor(t, []int64{3}, []float32{1, 2, 3})
	defer in.Destroy()
	out, err := s.Run(map[string]*ort.Tensor{"x": in})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	if got := values[float32](t, out["y"]); !slices.Equal(got, []float32{10, 40, 90}) {
		t.Fatalf("got %v, want the given tensor's weights (10, 40, 90)", got)
	}
	bad := map[string]*ort.Tensor{"w": in} // Go memory is fine, but the shape must match
	g2 := onnx.NewGraph("weighted2")
	x2 := g2.Input("x", onnx.Float, onnx.D(2))
	g2.Output("y", g2.Mul(x2, g2.Initializer("w", &onnx.Tensor{DType: onnx.Float, Dims: []int64{2}, Raw: onnx.FloatBytes([]float32{1, 1})})))
	if _, err := ort.NewSessionFromGraph(g2, ort.Options{Initializers: bad}); err == nil || !strings.Contains(err.Error(), "initializer w") {
		t.Errorf("mismatched initializer: %v", err)
	}
}
