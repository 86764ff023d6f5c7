package ort_test

import (
	"context"
	"slices"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// TestViewsRunInPlace binds flat chunks of an ORT-owned tensor to runs of
// y = 2·x + 1, each output bound to a second view of its input's chunk: the
// parent is updated in place, chunk by chunk, and nothing but the final read
// crosses the boundary.
func TestViewsRunInPlace(t *testing.T) {
	s := stepGraph(t)
	ctx := ort.WithPhase(context.Background(), "test-view")
	host := tensor(t, []int64{2, 3}, []float32{0, 1, 2, 3, 4, 5})
	defer host.Destroy()
	x, err := s.Upload(ctx, "x", host)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	before := ort.MeteredTransfers()
	for _, c := range [][2]int64{{0, 4}, {4, 6}} {
		in, err := x.View(c[0], []int64{c[1] - c[0]})
		if err != nil {
			t.Fatal(err)
		}
		out, err := x.View(c[0], []int64{c[1] - c[0]})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Input("x", in); err != nil {
			t.Fatal(err)
		}
		if err := b.Output("y", out); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Run(ctx); err != nil {
			t.Fatal(err)
		}
		b.Close()
		in.Destroy()
		out.Destroy()
	}
	raw, err := ort.Read(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := onnx.FloatView(raw), []float32{1, 3, 5, 7, 9, 11}; !slices.Equal(got, want) {
		t.Errorf("after the chunked runs: %v, want %v", got, want)
	}
	d := ort.MeteredTransfers().Sub(before)["test-view"]
	if d.Runs != 2 || d.ToORT != 0 || d.FromORT != 24 {
		t.Errorf("meter %+v, want 2 runs, nothing in and the 24 bytes read out", d)
	}
	for _, bad := range [][2]int64{{-1, 2}, {5, 2}, {0, 0}} {
		if v, err := x.View(bad[0], []int64{bad[1]}); err == nil {
			v.Destroy()
			t.Errorf("View(%d, [%d]) of 6 elements: no error", bad[0], bad[1])
		}
	}
	if _, err := host.View(0, []int64{1}); err == nil {
		t.Error("a view of a Go-memory tensor: no error")
	}
}

// TestHostWeightsTensor wraps part of a host-weight block as an ORT-owned
// tensor: binding it crosses nothing, and it shares the block's memory.
func TestHostWeightsTensor(t *testing.T) {
	s := stepGraph(t)
	block, err := ort.NewHostWeights(64)
	if err != nil {
		t.Fatal(err)
	}
	defer block.Close()
	raw, err := block.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	copy(onnx.FloatView(raw), []float32{1, 2, 3, 4})
	x, err := block.Tensor(raw, onnx.Float, []int64{4})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	if !x.ORTOwned() || x.OnDevice() {
		t.Fatalf("ORT-owned %v, on device %v; want ORT-owned host memory", x.ORTOwned(), x.OnDevice())
	}
	ctx := ort.WithPhase(context.Background(), "test-block")
	before := ort.MeteredTransfers()
	b, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Input("x", x); err != nil {
		t.Fatal(err)
	}
	if err := b.Output("y", x); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if d := ort.MeteredTransfers().Sub(before)["test-block"]; d.Bytes() != 0 {
		t.Errorf("meter %+v, want nothing crossing", d)
	}
	if got, want := onnx.FloatView(raw), []float32{3, 5, 7, 9}; !slices.Equal(got, want) {
		t.Errorf("block after the run: %v, want %v", got, want)
	}
	if _, err := block.Tensor(make([]byte, 16), onnx.Float, []int64{4}); err == nil {
		t.Error("a tensor over memory outside the block: no error")
	}
}
