package ort_test

import (
	"encoding/binary"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// hostMatMul builds y = x·W + b with W [k,n] and b [n] in w (when w is not
// nil) and returns the graph; W[i][j] = i - j/2, b[j] = j.
func hostMatMul(t *testing.T, w *ort.HostWeights, k, n int) *onnx.Graph {
	t.Helper()
	tensor := func(dims []int64, f func(i int) float32) *onnx.Tensor {
		count := int(dims[0])
		if len(dims) == 2 {
			count *= int(dims[1])
		}
		var raw []byte
		if w != nil {
			var err error
			if raw, err = w.Alloc(4 * count); err != nil {
				t.Fatal(err)
			}
		} else {
			raw = make([]byte, 4*count)
		}
		for i := range count {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f(i)))
		}
		return &onnx.Tensor{DType: onnx.Float, Dims: dims, Raw: raw}
	}
	g := onnx.NewGraph("hostmatmul")
	x := g.Input("x", onnx.Float, onnx.D(1), onnx.D(int64(k)))
	W := g.Initializer("W", tensor([]int64{int64(k), int64(n)}, func(i int) float32 { return float32(i/n) - float32(i%n)/2 }))
	b := g.Initializer("b", tensor([]int64{int64(n)}, func(i int) float32 { return float32(i) }))
	g.Output("y", g.Add(g.MatMul(x, W), b))
	return g
}

// TestHostWeights runs two sessions over one host block and checks the
// result against the hand-computed product: with x = ones, y[j] =
// Σ_i (i - j/2) + j = k(k-1)/2 - k·j/2 + j.
func TestHostWeights(t *testing.T) {
	const k, n = 300, 70 // W is 84 KB, above MinExternalBytes
	w, err := ort.NewHostWeights(ort.HostWeightSize([]int64{4 * k * n, 4 * n}))
	if err != nil {
		t.Fatal(err)
	}
	g := hostMatMul(t, w, k, n)
	var sessions []*ort.Session
	for range 2 {
		for _, prepack := range []bool{false, true} {
			s, err := ort.NewSessionFromGraph(g, ort.Options{Weights: w, DisablePrepacking: !prepack})
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, s)
		}
	}
	// The block outlives Close while sessions use it.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ones := make([]float32, k)
	for i := range ones {
		ones[i] = 1
	}
	x, err := ort.NewTensor([]int64{1, k}, ones)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	for si, s := range sessions {
		out, err := s.Run(map[string]*ort.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		y, err := ort.Values[float32](out["y"])
		out.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		for j, got := range y {
			want := float64(k*(k-1))/2 - float64(k*j)/2 + float64(j)
			if math.Abs(float64(got)-want) > 1e-3*math.Abs(want)+1e-3 {
				t.Fatalf("session %d: y[%d] = %v, want %v", si, j, got, want)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostWeightsBeyond2GiB builds a graph whose weights exceed protobuf's
// 2 GiB limit (2.1 GB of MatMul weight) and runs it. It needs ~2.2 GB of
// memory and a few seconds, so it runs only with IGSEARCH_LARGE=1.
func TestHostWeightsBeyond2GiB(t *testing.T) {
	if ok, _ := strconv.ParseBool(os.Getenv("IGSEARCH_LARGE")); !ok {
		t.Skip("set IGSEARCH_LARGE=1 to build a graph over 2 GiB")
	}
	const k, n = 8, 66 << 20 / 1 // W [8, 69M] floats = 2.2 GB
	w, err := ort.NewHostWeights(ort.HostWeightSize([]int64{4 * k * n, 4 * n}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	g := hostMatMul(t, w, k, n)
	if _, err := g.Marshal(); err == nil {
		t.Fatal("the inline graph should be over 2 GiB")
	}
	s, err := ort.NewSessionFromGraph(g, ort.Options{Weights: w, DisablePrepacking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ones := make([]float32, k)
	for i := range ones {
		ones[i] = 1
	}
	x, _ := ort.NewTensor([]int64{1, k}, ones)
	defer x.Destroy()
	out, err := s.Run(map[string]*ort.Tensor{"x": x})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	y, _ := ort.Values[float32](out["y"])
	for _, j := range []int{0, 1, n - 1} {
		want := float64(k*(k-1))/2 - float64(k*j)/2 + float64(j)
		if math.Abs(float64(y[j])-want) > 1e-3*math.Abs(want)+1e-3 {
			t.Fatalf("y[%d] = %v, want %v", j, y[j], want)
		}
	}
}
