package ort_test

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// TestMain loads the library the way the binary does ($IGSEARCH_ORT_LIB from
// the Makefile, else the set-up cache).
func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		if err := children[name](); err != nil {
			os.Stderr.WriteString(name + ": " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if _, err := ort.InitDefault("", ort.CPU); err != nil {
		os.Stderr.WriteString("ort tests: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// run marshals g, runs it on CPU with one thread and returns the outputs.
func run(t *testing.T, g *onnx.Graph, inputs map[string]*ort.Tensor) ort.Outputs {
	t.Helper()
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(inputs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(out.Destroy)
	for _, in := range inputs {
		t.Cleanup(in.Destroy)
	}
	return out
}

func tensor[T ort.Elem](t *testing.T, shape []int64, data []T) *ort.Tensor {
	t.Helper()
	x, err := ort.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func values[T ort.Elem](t *testing.T, x *ort.Tensor) []T {
	t.Helper()
	v, err := ort.Values[T](x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func near[T float32 | float64](t *testing.T, what string, got, want []T, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if math.Abs(float64(got[i])-float64(want[i])) > tol || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func TestMatMulSoftmaxSymbolicBatch(t *testing.T) {
	g := onnx.NewGraph("mm")
	x := g.Input("x", onnx.Float, onnx.Sym("batch"), onnx.D(3))
	w := g.Initializer("w", onnx.FloatTensor([]int64{3, 2}, []float32{1, 2, 3, 4, 5, 6}))
	g.Output("y", g.Softmax(g.MatMul(x, w), -1))
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Inputs()[0]; got.Name != "x" || got.DType != onnx.Float || got.Shape.String() != "[batch,3]" {
		t.Fatalf("input %+v", got)
	}
	for _, batch := range []int64{1, 2, 5} {
		xs := make([]float32, 3*batch)
		for i := range xs {
			xs[i] = float32(i%4) * 0.5
		}
		xt := tensor(t, []int64{batch, 3}, xs)
		out, err := s.Run(map[string]*ort.Tensor{"x": xt})
		if err != nil {
			t.Fatal(err)
		}
		y := out["y"]
		if got := y.Shape(); len(got) != 2 || got[0] != batch || got[1] != 2 {
			t.Fatalf("batch %d: shape %v", batch, got)
		}
		want := make([]float32, 0, 2*batch)
		for b := int64(0); b < batch; b++ {
			r := xs[3*b : 3*b+3]
			a := float64(r[0]*1 + r[1]*3 + r[2]*5)
			c := float64(r[0]*2 + r[1]*4 + r[2]*6)
			m := math.Max(a, c)
			ea, ec := math.Exp(a-m), math.Exp(c-m)
			want = append(want, float32(ea/(ea+ec)), float32(ec/(ea+ec)))
		}
		near(t, "softmax", values[float32](t, y), want, 1e-6)
		out.Destroy()
		xt.Destroy()
	}
}

func TestScalarAndDoubleOutputs(t *testing.T) {
	g := onnx.NewGraph("sd")
	d := g.Input("d", onnx.Double, onnx.Sym("n"))
	g.Output("sum", g.ReduceSum(g.Mul(d, d), false))
	out := run(t, g, map[string]*ort.Tensor{"d": tensor(t, []int64{3}, []float64{1, 2, 3})})
	if s := out["sum"]; len(s.Shape()) != 0 || s.DType() != onnx.Double {
		t.Fatalf("sum is %v", s)
	}
	near(t, "sum", values[float64](t, out["sum"]), []float64{14}, 0)
}

func TestCUDAOnCPUBuild(t *testing.T) {
	dev, err := ort.ParseDevice("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	g := onnx.NewGraph("c")
	g.Output("y", g.Neg(g.Input("x", onnx.Float, onnx.D(1))))
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ort.NewSessionFromBytes(b, ort.Options{Device: dev})
	if !errors.Is(err, ort.ErrNoCUDA) || !strings.Contains(err.Error(), "make setup-cuda") {
		t.Fatalf("CUDA on the CPU build: err = %v, want ErrNoCUDA naming make setup-cuda", err)
	}
}

// TestSharedArena runs two sessions on the process-wide CPU arena, each
// twice with growing inputs (the arena extends, then reuses), and checks
// their results.
func TestSharedArena(t *testing.T) {
	g := onnx.NewGraph("arena")
	x := g.Input("x", onnx.Float, onnx.Sym("n"))
	g.Output("y", g.Mul(g.Exp(x), x))
	for s := 0; s < 2; s++ {
		sess, err := ort.NewSessionFromGraph(g, ort.Options{SharedArena: true, IntraOpThreads: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1 << 10, 1 << 20, 1 << 18} {
			in := make([]float32, n)
			want := make([]float32, n)
			for i := range in {
				in[i] = float32(i%7) / 7
				want[i] = float32(math.Exp(float64(in[i]))) * in[i]
			}
			xt := tensor(t, []int64{int64(n)}, in)
			out, err := sess.Run(map[string]*ort.Tensor{"x": xt})
			xt.Destroy()
			if err != nil {
				t.Fatal(err)
			}
			near(t, "y", values[float32](t, out["y"]), want, 1e-5)
			out.Destroy()
		}
		sess.Close()
	}
}
