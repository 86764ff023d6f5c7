package ort_test

import (
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// The op tests build one small graph per case with the IR's typed helpers,
// run it in ONNX Runtime, and compare with values computed here in Go. Float
// cases run in float32 and in float64 (the autodiff's finite-difference
// checks need double).

// Inputs shared by the float cases, all [2,3].
var (
	xs  = []float64{0.5, -1.25, 2, 3, -0.75, 1.5}
	ys  = []float64{1.5, 0.25, -2, 0.5, 2, -1}
	ps  = []float64{0.5, 1.25, 2, 3, 0.75, 1.5} // positive
	y2s = []float64{0.5, 0, 2, 1, -0.75, 0}     // equal to xs in places
	sq  = []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}  // [3,3]
)

var shape23 = []int64{2, 3}

func each(a []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(a))
	for i, v := range a {
		out[i] = f(v)
	}
	return out
}

func zip(a, b []float64, f func(x, y float64) float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = f(a[i], b[i])
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// softmaxRows is softmax (or log-softmax) over the last axis of a [r,c] matrix.
func softmaxRows(a []float64, c int, log bool) []float64 {
	out := make([]float64, len(a))
	for r := 0; r < len(a)/c; r++ {
		row := a[r*c : r*c+c]
		m := slices.Max(row)
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		for j, v := range row {
			if log {
				out[r*c+j] = v - m - math.Log(s)
			} else {
				out[r*c+j] = math.Exp(v-m) / s
			}
		}
	}
	return out
}

// floatCase is a graph over float inputs x, y, p, y2 (dtype dt) and its
// expected output.
type floatCase struct {
	name  string
	build func(g *onnx.Graph, dt onnx.DType, x, y, p, y2 *onnx.Value) *onnx.Value
	shape []int64
	want  []float64
}

func floatCases() []floatCase {
	w := []float64{1, -2, 0.5, 3, -1, 2} // [3,2]
	matmul := make([]float64, 4)
	for i := 0; i < 2; i++ {
		for j := 0; j < 2; j++ {
			for k := 0; k < 3; k++ {
				matmul[2*i+j] += xs[3*i+k] * w[2*k+j]
			}
		}
	}
	konst := func(g *onnx.Graph, dt onnx.DType, dims []int64, v []float64) *onnx.Value {
		if dt == onnx.Double {
			return g.Const(onnx.DoubleTensor(dims, v))
		}
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return g.Const(onnx.FloatTensor(dims, f))
	}
	idx := func(g *onnx.Graph, dims []int64, v ...int64) *onnx.Value { return g.Const(onnx.Int64Tensor(dims, v)) }
	return []floatCase{
		{"Add", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Add(x, y) }, shape23, zip(xs, ys, func(a, b float64) float64 { return a + b })},
		{"Sub", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Sub(x, y) }, shape23, zip(xs, ys, func(a, b float64) float64 { return a - b })},
		{"Mul", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Mul(x, y) }, shape23, zip(xs, ys, func(a, b float64) float64 { return a * b })},
		{"Div", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Div(x, y) }, shape23, zip(xs, ys, func(a, b float64) float64 { return a / b })},
		{"AddBroadcast", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Add(x, konst(g, dt, []int64{3}, []float64{10, 20, 30}))
		}, shape23, []float64{10.5, 18.75, 32, 13, 19.25, 31.5}},
		{"Pow", func(g *onnx.Graph, _ onnx.DType, _, y, p, _ *onnx.Value) *onnx.Value { return g.Pow(p, y) }, shape23, zip(ps, ys, math.Pow)},
		{"Max", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Max(x, y) }, shape23, zip(xs, ys, math.Max)},
		{"Min", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Min(x, y) }, shape23, zip(xs, ys, math.Min)},
		{"Equal", func(g *onnx.Graph, _ onnx.DType, x, _, _, y2 *onnx.Value) *onnx.Value { return g.Equal(x, y2) }, shape23, zip(xs, y2s, func(a, b float64) float64 { return b2f(a == b) })},
		{"Less", func(g *onnx.Graph, _ onnx.DType, x, _, _, y2 *onnx.Value) *onnx.Value { return g.Less(x, y2) }, shape23, zip(xs, y2s, func(a, b float64) float64 { return b2f(a < b) })},
		{"Greater", func(g *onnx.Graph, _ onnx.DType, x, _, _, y2 *onnx.Value) *onnx.Value { return g.Greater(x, y2) }, shape23, zip(xs, y2s, func(a, b float64) float64 { return b2f(a > b) })},
		{"LessOrEqual", func(g *onnx.Graph, _ onnx.DType, x, _, _, y2 *onnx.Value) *onnx.Value { return g.LessOrEqual(x, y2) }, shape23, zip(xs, y2s, func(a, b float64) float64 { return b2f(a <= b) })},
		{"GreaterOrEqual", func(g *onnx.Graph, _ onnx.DType, x, _, _, y2 *onnx.Value) *onnx.Value { return g.GreaterOrEqual(x, y2) }, shape23, zip(xs, y2s, func(a, b float64) float64 { return b2f(a >= b) })},
		{"Where", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value {
			return g.Where(g.Less(x, y), x, y)
		}, shape23, zip(xs, ys, math.Min)},
		{"Neg", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Neg(x) }, shape23, each(xs, func(a float64) float64 { return -a })},
		{"Exp", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Exp(x) }, shape23, each(xs, math.Exp)},
		{"Log", func(g *onnx.Graph, _ onnx.DType, _, _, p, _ *onnx.Value) *onnx.Value { return g.Log(p) }, shape23, each(ps, math.Log)},
		{"Sqrt", func(g *onnx.Graph, _ onnx.DType, _, _, p, _ *onnx.Value) *onnx.Value { return g.Sqrt(p) }, shape23, each(ps, math.Sqrt)},
		{"Reciprocal", func(g *onnx.Graph, _ onnx.DType, _, _, p, _ *onnx.Value) *onnx.Value { return g.Reciprocal(p) }, shape23, each(ps, func(a float64) float64 { return 1 / a })},
		{"Sigmoid", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Sigmoid(x) }, shape23, each(xs, func(a float64) float64 { return 1 / (1 + math.Exp(-a)) })},
		{"Tanh", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Tanh(x) }, shape23, each(xs, math.Tanh)},
		{"Abs", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Abs(x) }, shape23, each(xs, math.Abs)},
		{"Sign", func(g *onnx.Graph, _ onnx.DType, _, _, _, y2 *onnx.Value) *onnx.Value { return g.Sign(y2) }, shape23, each(y2s, func(a float64) float64 {
			if a == 0 {
				return 0
			}
			return math.Copysign(1, a)
		})},
		{"Relu", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Relu(x) }, shape23, each(xs, func(a float64) float64 { return math.Max(a, 0) })},
		{"Identity", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Identity(x) }, shape23, xs},
		{"Softmax", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Softmax(x, -1) }, shape23, softmaxRows(xs, 3, false)},
		{"LogSoftmax", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.LogSoftmax(x, 1) }, shape23, softmaxRows(xs, 3, true)},
		{"SoftmaxAxis0", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Transpose(g.Softmax(g.Transpose(x, 1, 0), -1), 1, 0)
		}, shape23, func() []float64 {
			t := []float64{xs[0], xs[3], xs[1], xs[4], xs[2], xs[5]}
			s := softmaxRows(t, 2, false)
			return []float64{s[0], s[2], s[4], s[1], s[3], s[5]}
		}()},
		{"CastBool", func(g *onnx.Graph, dt onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value {
			return g.Cast(g.Less(x, y), dt)
		}, shape23, zip(xs, ys, func(a, b float64) float64 { return b2f(a < b) })},
		{"CastInt64", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Cast(g.Cast(x, onnx.Int64), dt)
		}, shape23, each(xs, math.Trunc)},
		{"Clip", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Clip(x, g.Scalar(dt, -1), g.Scalar(dt, 1))
		}, shape23, each(xs, func(a float64) float64 { return math.Max(-1, math.Min(1, a)) })},
		{"MatMul", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.MatMul(x, konst(g, dt, []int64{3, 2}, w))
		}, []int64{2, 2}, matmul},
		{"MatMulBatched", func(g *onnx.Graph, dt onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value {
			b := g.Concat(0, g.Unsqueeze(x, 0), g.Unsqueeze(y, 0)) // [2,2,3]
			return g.MatMul(b, g.Transpose(b, 0, 2, 1))            // [2,2,2]
		}, []int64{2, 2, 2}, func() []float64 {
			var out []float64
			for _, m := range [][]float64{xs, ys} {
				for i := 0; i < 2; i++ {
					for j := 0; j < 2; j++ {
						s := 0.0
						for k := 0; k < 3; k++ {
							s += m[3*i+k] * m[3*j+k]
						}
						out = append(out, s)
					}
				}
			}
			return out
		}()},
		{"ReduceSum", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.ReduceSum(x, true, 1) }, []int64{2, 1}, []float64{1.25, 3.75}},
		{"ReduceSumAll", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.ReduceSum(x, false) }, []int64{}, []float64{5}},
		{"ReduceMean", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.ReduceMean(x, false, 0)
		}, []int64{3}, []float64{1.75, -1, 1.75}},
		{"ReduceMax", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.ReduceMax(x, false, -1)
		}, []int64{2}, []float64{2, 3}},
		{"Reshape", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Reshape(x, 3, -1) }, []int64{3, 2}, xs},
		{"Transpose", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Transpose(x, 1, 0) }, []int64{3, 2}, []float64{0.5, 3, -1.25, -0.75, 2, 1.5}},
		{"Unsqueeze", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Unsqueeze(x, 0, -1) }, []int64{1, 2, 3, 1}, xs},
		{"Squeeze", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Squeeze(g.Unsqueeze(x, 1), 1)
		}, shape23, xs},
		{"Concat", func(g *onnx.Graph, _ onnx.DType, x, y, _, _ *onnx.Value) *onnx.Value { return g.Concat(1, x, y) }, []int64{2, 6}, append(append(append(append([]float64{}, xs[:3]...), ys[:3]...), xs[3:]...), ys[3:]...)},
		{"Slice", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Slice(x, []int64{1}, []int64{1}, []int64{math.MaxInt64})
		}, []int64{2, 2}, []float64{-1.25, 2, -0.75, 1.5}},
		{"SliceNegative", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Slice(x, []int64{0, 1}, []int64{-1, 0}, []int64{2, -1})
		}, []int64{1, 2}, []float64{3, -0.75}},
		{"Expand", func(g *onnx.Graph, dt onnx.DType, _, _, _, _ *onnx.Value) *onnx.Value {
			return g.Expand(konst(g, dt, []int64{1, 3}, []float64{1, 2, 3}), g.Ints(2, 3), onnx.Dims(2, 3))
		}, shape23, []float64{1, 2, 3, 1, 2, 3}},
		{"Shape", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Shape(x) }, []int64{2}, []float64{2, 3}},
		{"Gather", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Gather(x, idx(g, []int64{3}, 1, 0, 1), 0)
		}, []int64{3, 3}, append(append(append([]float64{}, xs[3:]...), xs[:3]...), xs[3:]...)},
		{"GatherAxis1", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.Gather(x, idx(g, []int64{}, 2), 1)
		}, []int64{2}, []float64{2, 1.5}},
		{"GatherElements", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.GatherElements(x, idx(g, []int64{2, 1}, 2, 0), 1)
		}, []int64{2, 1}, []float64{2, 3}},
		{"ScatterND", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.ScatterND(x, idx(g, []int64{1, 2}, 1, 0), konst(g, dt, []int64{1}, []float64{9}), "")
		}, shape23, []float64{0.5, -1.25, 2, 9, -0.75, 1.5}},
		{"ScatterNDAdd", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.ScatterND(x, idx(g, []int64{2, 1}, 0, 0), konst(g, dt, []int64{2, 3}, ys), "add")
		}, shape23, []float64{0.5 + 1.5 + 0.5, -1.25 + 0.25 + 2, 2 - 2 - 1, 3, -0.75, 1.5}},
		{"ScatterElementsAdd", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			return g.ScatterElements(x, idx(g, []int64{2, 2}, 0, 0, 2, 1), konst(g, dt, []int64{2, 2}, []float64{1, 2, 3, 4}), 1, "add")
		}, shape23, []float64{3.5, -1.25, 2, 3, 3.25, 4.5}},
		{"ConstantOfShape", func(g *onnx.Graph, dt onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value {
			fill := onnx.DoubleTensor([]int64{1}, []float64{2.5})
			if dt == onnx.Float {
				fill = onnx.FloatTensor([]int64{1}, []float32{2.5})
			}
			return g.ConstantOfShape(g.Shape(x), fill, onnx.Dims(2, 3))
		}, shape23, []float64{2.5, 2.5, 2.5, 2.5, 2.5, 2.5}},
		{"CumSum", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.CumSum(x, 1) }, shape23, []float64{0.5, -0.75, 1.25, 3, 2.25, 3.75}},
		{"Range", func(g *onnx.Graph, dt onnx.DType, _, _, _, _ *onnx.Value) *onnx.Value {
			return g.Range(g.Scalar(dt, 0), g.Scalar(dt, 2.5), g.Scalar(dt, 0.5))
		}, []int64{5}, []float64{0, 0.5, 1, 1.5, 2}},
		{"TriluUpper", func(g *onnx.Graph, dt onnx.DType, _, _, _, _ *onnx.Value) *onnx.Value {
			return g.Trilu(konst(g, dt, []int64{3, 3}, sq), nil, true)
		}, []int64{3, 3}, []float64{1, 2, 3, 0, 5, 6, 0, 0, 9}},
		{"TriluLowerK", func(g *onnx.Graph, dt onnx.DType, _, _, _, _ *onnx.Value) *onnx.Value {
			return g.Trilu(konst(g, dt, []int64{3, 3}, sq), g.Const(onnx.Int64Tensor(nil, []int64{-1})), false)
		}, []int64{3, 3}, []float64{0, 0, 0, 4, 0, 0, 7, 8, 0}},
		{"Split", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Split(x, 1, 1, 2)[1] }, []int64{2, 2}, []float64{-1.25, 2, -0.75, 1.5}},
		{"Tile", func(g *onnx.Graph, _ onnx.DType, x, _, _, _ *onnx.Value) *onnx.Value { return g.Tile(x, 2, 1) }, []int64{4, 3}, append(append([]float64{}, xs...), xs...)},
	}
}

// floatTensor makes an input of dtype dt from float64 data.
func floatTensor(t *testing.T, dt onnx.DType, shape []int64, v []float64) *ort.Tensor {
	if dt == onnx.Double {
		return tensor(t, shape, slices.Clone(v))
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return tensor(t, shape, f)
}

// asFloat64 reads any numeric or bool output as float64.
func asFloat64(t *testing.T, x *ort.Tensor) []float64 {
	t.Helper()
	var out []float64
	switch x.DType() {
	case onnx.Float:
		for _, v := range values[float32](t, x) {
			out = append(out, float64(v))
		}
	case onnx.Double:
		out = values[float64](t, x)
	case onnx.Int64:
		for _, v := range values[int64](t, x) {
			out = append(out, float64(v))
		}
	case onnx.Bool:
		for _, v := range values[bool](t, x) {
			out = append(out, b2f(v))
		}
	default:
		t.Fatalf("unexpected output dtype %s", x.DType())
	}
	return out
}

// runFloatCase runs c in dtype dt; it returns the ONNX Runtime error, if the
// graph did not load or run, and fails t on wrong values.
func runFloatCase(t *testing.T, c floatCase, dt onnx.DType) error {
	g := onnx.NewGraph(c.name)
	x := g.Input("x", dt, onnx.D(2), onnx.D(3))
	y := g.Input("y", dt, onnx.D(2), onnx.D(3))
	p := g.Input("p", dt, onnx.D(2), onnx.D(3))
	y2 := g.Input("y2", dt, onnx.D(2), onnx.D(3))
	out := c.build(g, dt, x, y, p, y2)
	g.Output("out", out)
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	in := map[string]*ort.Tensor{
		"x":  floatTensor(t, dt, shape23, xs),
		"y":  floatTensor(t, dt, shape23, ys),
		"p":  floatTensor(t, dt, shape23, ps),
		"y2": floatTensor(t, dt, shape23, y2s),
	}
	defer func() {
		for _, v := range in {
			v.Destroy()
		}
	}()
	res, err := s.Run(in)
	if err != nil {
		return err
	}
	defer res.Destroy()
	o := res["out"]
	if !slices.Equal(o.Shape(), c.shape) {
		t.Errorf("%s %s: shape %v, want %v", c.name, dt, o.Shape(), c.shape)
		return nil
	}
	if want := out.Shape.Sizes(); out.Shape.Known() && !slices.Equal(want, c.shape) {
		t.Errorf("%s %s: IR inferred shape %v, ORT computed %v", c.name, dt, out.Shape, c.shape)
	}
	tol := 1e-6
	if dt == onnx.Double {
		tol = 1e-13
	}
	got := asFloat64(t, o)
	for i := range c.want {
		if d := math.Abs(got[i] - c.want[i]); !(d <= tol*math.Max(1, math.Abs(c.want[i]))) {
			t.Errorf("%s %s: [%d] = %v, want %v (got %v)", c.name, dt, i, got[i], c.want[i], got)
			break
		}
	}
	return nil
}

func TestOpsFloat32(t *testing.T) {
	for _, c := range floatCases() {
		if err := runFloatCase(t, c, onnx.Float); err != nil {
			t.Errorf("%s float32: %v", c.name, err)
		}
	}
}

// doubleUnsupported lists the cases ONNX Runtime 1.29's CPU provider has no
// float64 kernel for (measured); the test fails if that changes either way.
var doubleUnsupported = []string{}

func TestOpsFloat64(t *testing.T) {
	var missing []string
	for _, c := range floatCases() {
		if err := runFloatCase(t, c, onnx.Double); err != nil {
			if !strings.Contains(err.Error(), "NOT_IMPLEMENTED") && !strings.Contains(err.Error(), "Could not find an implementation") {
				t.Errorf("%s float64: %v", c.name, err)
			}
			missing = append(missing, c.name)
		}
	}
	sort.Strings(missing)
	if !slices.Equal(missing, doubleUnsupported) {
		t.Errorf("float64 cases without a CPU kernel: %q, want %q", missing, doubleUnsupported)
	}
}

// TestOpsInt64 covers the integer paths the models use: position ids as
// cumsum(mask) − 1, gathers of ids, ranges and comparisons on int64.
func TestOpsInt64(t *testing.T) {
	g := onnx.NewGraph("int64")
	mask := g.Input("mask", onnx.Int64, onnx.Sym("batch"), onnx.Sym("seq"))
	ids := g.Input("ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("seq"))
	one := g.Const(onnx.Int64Tensor(nil, []int64{1}))
	pos := g.Sub(g.CumSum(mask, 1), one)
	g.Output("pos", g.Where(g.Equal(mask, g.Const(onnx.Int64Tensor(nil, []int64{0}))), one, pos))
	table := g.Initializer("table", onnx.Int64Tensor([]int64{5}, []int64{100, 101, 102, 103, 104}))
	g.Output("gathered", g.Gather(table, ids, 0))
	g.Output("range", g.Range(g.Const(onnx.Int64Tensor(nil, []int64{2})), g.Const(onnx.Int64Tensor(nil, []int64{11})), g.Const(onnx.Int64Tensor(nil, []int64{3}))))
	g.Output("sum", g.ReduceSum(ids, false))
	g.Output("asfloat", g.Cast(ids, onnx.Float))
	g.Output("max", g.Max(ids, mask))
	out := run(t, g, map[string]*ort.Tensor{
		"mask": tensor(t, []int64{2, 4}, []int64{0, 1, 1, 1, 1, 1, 1, 1}),
		"ids":  tensor(t, []int64{2, 4}, []int64{4, 3, 2, 1, 0, 0, 1, 2}),
	})
	check := func(name string, want []int64) {
		t.Helper()
		if got := values[int64](t, out[name]); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("pos", []int64{1, 0, 1, 2, 0, 1, 2, 3})
	check("gathered", []int64{104, 103, 102, 101, 100, 100, 101, 102})
	check("range", []int64{2, 5, 8})
	check("sum", []int64{13})
	check("max", []int64{4, 3, 2, 1, 1, 1, 1, 2})
	near(t, "asfloat", values[float32](t, out["asfloat"]), []float32{4, 3, 2, 1, 0, 0, 1, 2}, 0)
}

func TestOpsBool(t *testing.T) {
	g := onnx.NewGraph("bool")
	a := g.Input("a", onnx.Bool, onnx.Sym("n"))
	b := g.Input("b", onnx.Bool, onnx.Sym("n"))
	g.Output("and", g.And(a, b))
	g.Output("or", g.Or(a, b))
	g.Output("not", g.Not(a))
	g.Output("where", g.Where(a, g.Cast(b, onnx.Int64), g.Const(onnx.Int64Tensor(nil, []int64{7}))))
	out := run(t, g, map[string]*ort.Tensor{
		"a": tensor(t, []int64{4}, []bool{true, true, false, false}),
		"b": tensor(t, []int64{4}, []bool{true, false, true, false}),
	})
	for name, want := range map[string][]bool{
		"and": {true, false, false, false},
		"or":  {true, true, true, false},
		"not": {false, false, true, true},
	} {
		if got := values[bool](t, out[name]); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := values[int64](t, out["where"]); !slices.Equal(got, []int64{1, 0, 7, 7}) {
		t.Errorf("where = %v", got)
	}
}

// probe is an op outside ops.go's helpers that the autodiff or a model may
// emit; TestDoubleProbe checks which have a float64 CPU kernel, comparing the
// float64 result with the float32 one.
type probe struct {
	op, domain string
	attrs      onnx.Attrs
	// inputs builds the inputs from x [2,3] (positive values).
	inputs func(g *onnx.Graph, dt onnx.DType, x *onnx.Value) []*onnx.Value
	outs   int
	// outTypes fixes output dtypes that do not follow the input (0: dt).
	outTypes []onnx.DType
}

func probes() []probe {
	one := func(g *onnx.Graph, _ onnx.DType, x *onnx.Value) []*onnx.Value { return []*onnx.Value{x} }
	two := func(g *onnx.Graph, _ onnx.DType, x *onnx.Value) []*onnx.Value { return []*onnx.Value{x, g.Neg(x)} }
	axes := func(g *onnx.Graph, _ onnx.DType, x *onnx.Value) []*onnx.Value { return []*onnx.Value{x, g.Ints(1)} }
	vec := func(g *onnx.Graph, dt onnx.DType, n int64) *onnx.Value {
		return g.Cast(g.Const(onnx.FloatTensor([]int64{n}, []float32{0.5, 1.5, 2.5}[:n])), dt)
	}
	return []probe{
		{op: "Cos", inputs: one}, {op: "Sin", inputs: one}, {op: "Erf", inputs: one},
		{op: "Floor", inputs: one}, {op: "Ceil", inputs: one}, {op: "Round", inputs: one},
		{op: "Softplus", inputs: one}, {op: "Gelu", inputs: one}, {op: "Elu", inputs: one},
		{op: "LeakyRelu", inputs: one}, {op: "HardSigmoid", inputs: one}, {op: "Selu", inputs: one},
		{op: "IsNaN", inputs: one, outTypes: []onnx.DType{onnx.Bool}}, {op: "IsInf", inputs: one, outTypes: []onnx.DType{onnx.Bool}},
		{op: "ReduceMin", inputs: axes}, {op: "ReduceProd", inputs: axes},
		{op: "ReduceSumSquare", inputs: axes}, {op: "ReduceL2", inputs: axes},
		{op: "ReduceLogSumExp", inputs: axes},
		{op: "ArgMax", attrs: onnx.Attrs{"axis": 1}, inputs: one, outTypes: []onnx.DType{onnx.Int64}},
		{op: "Mod", attrs: onnx.Attrs{"fmod": 1}, inputs: two},
		{op: "Sum", inputs: two}, {op: "Mean", inputs: two},
		{op: "Einsum", attrs: onnx.Attrs{"equation": "ij,kj->ik"}, inputs: two},
		{op: "Gemm", attrs: onnx.Attrs{"transB": 1}, inputs: two},
		{op: "TopK", inputs: func(g *onnx.Graph, _ onnx.DType, x *onnx.Value) []*onnx.Value { return []*onnx.Value{x, g.Ints(2)} }, outs: 2, outTypes: []onnx.DType{0, onnx.Int64}},
		{op: "LayerNormalization", attrs: onnx.Attrs{"axis": -1}, inputs: func(g *onnx.Graph, dt onnx.DType, x *onnx.Value) []*onnx.Value {
			return []*onnx.Value{x, vec(g, dt, 3), vec(g, dt, 3)}
		}},
		// ONNX Runtime registers SimplifiedLayerNormalization in the ONNX
		// domain, not com.microsoft.
		{op: "SimplifiedLayerNormalization", attrs: onnx.Attrs{"axis": -1}, inputs: func(g *onnx.Graph, dt onnx.DType, x *onnx.Value) []*onnx.Value {
			return []*onnx.Value{x, vec(g, dt, 3)}
		}},
		{op: "SkipSimplifiedLayerNormalization", domain: onnx.MicrosoftDomain, inputs: func(g *onnx.Graph, dt onnx.DType, x *onnx.Value) []*onnx.Value {
			return []*onnx.Value{x, g.Neg(x), vec(g, dt, 3)}
		}},
	}
}

// doubleProbeUnsupported lists the probes without a float64 CPU kernel in
// ONNX Runtime 1.29 (measured).
var doubleProbeUnsupported = []string{"Elu", "Erf", "Gelu", "HardSigmoid", "LeakyRelu", "Mean", "Selu", "SkipSimplifiedLayerNormalization", "Softplus"}

func TestDoubleProbe(t *testing.T) {
	xv := []float64{0.5, 1.25, 2, 3, 0.75, 1.5}
	runProbe := func(p probe, dt onnx.DType) ([][]float64, error) {
		g := onnx.NewGraph(p.op)
		x := g.Input("x", dt, onnx.D(2), onnx.D(3))
		specs := make([]onnx.OutSpec, max(p.outs, 1))
		for i := range specs {
			specs[i] = onnx.OutSpec{Type: dt, Shape: onnx.Shape{onnx.Unknown, onnx.Unknown}}
			if i < len(p.outTypes) && p.outTypes[i] != 0 {
				specs[i].Type = p.outTypes[i]
			}
		}
		outs := g.Node(p.op, p.domain, p.inputs(g, dt, x), p.attrs, specs...)
		for i, o := range outs {
			g.Output("out"+string(rune('0'+i)), o)
		}
		s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		// Declared output types are only a guess for ops such as ArgMax
		// and IsNaN: read whatever came back.
		in := floatTensor(t, dt, shape23, xv)
		defer in.Destroy()
		res, err := s.Run(map[string]*ort.Tensor{"x": in})
		if err != nil {
			return nil, err
		}
		defer res.Destroy()
		var vals [][]float64
		for i := range outs {
			vals = append(vals, asFloat64(t, res["out"+string(rune('0'+i))]))
		}
		return vals, nil
	}
	var missing []string
	for _, p := range probes() {
		want, err := runProbe(p, onnx.Float)
		if err != nil {
			t.Logf("%s: float32 does not run either: %v", p.op, firstLine(err))
			missing = append(missing, p.op+"(float32 too)")
			continue
		}
		got, err := runProbe(p, onnx.Double)
		if err != nil {
			t.Logf("%s: float64: %v", p.op, firstLine(err))
			missing = append(missing, p.op)
			continue
		}
		for i := range want {
			for j := range want[i] {
				if math.Abs(got[i][j]-want[i][j]) > 1e-5*math.Max(1, math.Abs(want[i][j])) {
					t.Errorf("%s: float64 output %d [%d] = %v, float32 %v", p.op, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
	sort.Strings(missing)
	if !slices.Equal(missing, doubleProbeUnsupported) {
		t.Errorf("probes without a float64 CPU kernel: %q, want %q", missing, doubleProbeUnsupported)
	}
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
