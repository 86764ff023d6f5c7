package grad

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

// dist is how a parameter's test values are drawn.
type dist int

const (
	uniform  dist = iota // U[-2, 2]
	positive             // U[0.5, 2]
	awayZero             // ±U[0.3, 2]
)

// pspec declares one parameter of a test graph: a graph input of the case's
// dtype. sym names dims to declare symbolically ("" keeps the size).
type pspec struct {
	name string
	dims []int64
	sym  []string
	dist dist
	lo   float64 // with hi, overrides dist: U[lo, hi]
	hi   float64
}

// gradCase is one finite-difference check: loss = Σ build(params)·R with a
// random constant R.
type gradCase struct {
	name    string
	dt      onnx.DType // Double when zero
	params  []pspec
	build   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value
	outDims []int64 // the output's runtime shape, when not static
	feeds   []feed  // extra (non-parameter) graph inputs that build declares
	tol     float64 // relative tolerance, default 1e-6 (1e-2 for float32)
}

// covered collects the forward op types of the cases that passed.
var covered = map[string]bool{}

func seedOf(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func randConst(g *onnx.Graph, rng *rand.Rand, dt onnx.DType, dims []int64) *onnx.Value {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = rng.Float64()*2 - 1
	}
	return g.Const(tensorOf(dt, dims, vals))
}

func tensorOf(dt onnx.DType, dims []int64, vals []float64) *onnx.Tensor {
	switch dt {
	case onnx.Double:
		return onnx.DoubleTensor(dims, vals)
	case onnx.Float:
		f := make([]float32, len(vals))
		for i, v := range vals {
			f[i] = float32(v)
		}
		return onnx.FloatTensor(dims, f)
	}
	panic(fmt.Sprintf("tensorOf %s", dt))
}

// dconst is a float64 constant.
func dconst(g *onnx.Graph, dims []int64, vals ...float64) *onnx.Value {
	return g.Const(onnx.DoubleTensor(dims, vals))
}

// iconst is an int64 constant.
func iconst(g *onnx.Graph, dims []int64, vals ...int64) *onnx.Value {
	return g.Const(onnx.Int64Tensor(dims, vals))
}

// bconst is a bool constant.
func bconst(g *onnx.Graph, dims []int64, vals ...bool) *onnx.Value {
	return g.Const(onnx.BoolTensor(dims, vals))
}

func numel(dims []int64) int {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	return n
}

func draw(rng *rand.Rand, p pspec) float64 {
	if p.hi > p.lo {
		return p.lo + rng.Float64()*(p.hi-p.lo)
	}
	switch p.dist {
	case positive:
		return 0.5 + 1.5*rng.Float64()
	case awayZero:
		v := 0.3 + 1.7*rng.Float64()
		if rng.IntN(2) == 0 {
			v = -v
		}
		return v
	}
	return rng.Float64()*4 - 2
}

// checkCase builds the case's graph, differentiates it and compares every
// gradient entry with central differences of the loss, all through ORT.
func checkCase(t *testing.T, c gradCase) {
	t.Helper()
	dt := c.dt
	if dt == 0 {
		dt = onnx.Double
	}
	rng := rand.New(rand.NewPCG(seedOf(c.name), 7))
	g := onnx.NewGraph(strings.ReplaceAll(c.name, "/", "_"))
	params := make([]*onnx.Value, len(c.params))
	for i, p := range c.params {
		dims := make([]onnx.Dim, len(p.dims))
		for j, d := range p.dims {
			dims[j] = onnx.D(d)
			if j < len(p.sym) && p.sym[j] != "" {
				dims[j] = onnx.Sym(p.sym[j])
			}
		}
		params[i] = g.Input(p.name, dt, dims...)
	}
	y := c.build(g, params)
	ops := map[string]bool{}
	for _, n := range g.Nodes {
		ops[n.Op] = true
	}
	outDims := c.outDims
	if outDims == nil {
		if !y.Shape.Known() {
			t.Fatalf("output %v has no static shape; set outDims", y)
		}
		outDims = y.Shape.Sizes()
	}
	loss := g.ReduceSum(g.Mul(y, randConst(g, rng, y.Type, outDims)), false)
	g.Output("loss", loss)
	lossModel, err := g.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	grads, err := Backward(g, loss, params, Options{})
	if err != nil {
		t.Fatalf("Backward: %v", err)
	}
	for i, p := range c.params {
		g.Output("grad_"+p.name, grads[i])
	}
	model, err := g.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	full := openSession(t, model, false)
	lossOnly := openSession(t, lossModel, false)

	vals := make([][]float64, len(c.params))
	for i, p := range c.params {
		vals[i] = make([]float64, numel(p.dims))
		for j := range vals[i] {
			vals[i][j] = draw(rng, p)
			if dt == onnx.Float {
				vals[i][j] = float64(float32(vals[i][j]))
			}
		}
	}
	feeds := func() []feed {
		fs := make([]feed, 0, len(vals)+len(c.feeds))
		for i, p := range c.params {
			var data any = slices.Clone(vals[i])
			if dt == onnx.Float {
				f := make([]float32, len(vals[i]))
				for j, v := range vals[i] {
					f[j] = float32(v)
				}
				data = f
			}
			fs = append(fs, feed{p.name, p.dims, data})
		}
		return append(fs, c.feeds...)
	}
	res, err := full.run(feeds())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	evalLoss := func() float64 {
		r, err := lossOnly.run(feeds())
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return r["loss"][0]
	}
	h, tol := 1e-5, 1e-6
	if dt == onnx.Float {
		h, tol = 1e-2, 1e-2
	}
	if c.tol > 0 {
		tol = c.tol
	}
	worst := 0.0
	for i, p := range c.params {
		an := res["grad_"+p.name]
		if len(an) != len(vals[i]) {
			t.Fatalf("grad_%s has %d elements, want %d", p.name, len(an), len(vals[i]))
		}
		for j := range vals[i] {
			x := vals[i][j]
			xp, xm := x+h, x-h
			if dt == onnx.Float {
				xp, xm = float64(float32(xp)), float64(float32(xm))
			}
			vals[i][j] = xp
			lp := evalLoss()
			vals[i][j] = xm
			lm := evalLoss()
			vals[i][j] = x
			num := (lp - lm) / (xp - xm)
			e := math.Abs(an[j]-num) / (1 + math.Abs(num))
			worst = max(worst, e)
			if e > tol || math.IsNaN(an[j]) {
				t.Errorf("d loss/d %s[%d] = %.9g, finite difference %.9g (rel err %.2g > %.2g)", p.name, j, an[j], num, e, tol)
			}
		}
	}
	if !t.Failed() {
		for op := range ops {
			covered[op] = true
		}
	}
	t.Logf("%s: worst rel err %.2g", dt, worst)
}

// binaryPatterns are broadcasting patterns for two-input ops:
// shapes of a and b, and symbols for a's dims.
var binaryPatterns = []struct {
	name   string
	a, b   []int64
	symA   []string
	outDim []int64
}{
	{"same", []int64{2, 3}, []int64{2, 3}, nil, nil},
	{"trailing", []int64{2, 3, 4}, []int64{4}, nil, nil},
	{"both", []int64{2, 1, 4}, []int64{3, 1}, nil, nil},
	{"scalar", []int64{}, []int64{2, 3}, nil, nil},
	{"ones", []int64{2, 3}, []int64{1, 1}, nil, nil},
	{"symbolic", []int64{2, 3}, []int64{1, 3}, []string{"batch", ""}, []int64{2, 3}},
}

func opCases() []gradCase {
	var cs []gradCase
	unary := func(op string, d dist, f func(g *onnx.Graph, x *onnx.Value) *onnx.Value) {
		cs = append(cs, gradCase{name: op, params: []pspec{{name: "x", dims: []int64{2, 3}, dist: d}},
			build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return f(g, p[0]) }})
	}
	unary("Identity", uniform, (*onnx.Graph).Identity)
	unary("Neg", uniform, (*onnx.Graph).Neg)
	unary("Sqrt", positive, (*onnx.Graph).Sqrt)
	unary("Reciprocal", awayZero, (*onnx.Graph).Reciprocal)
	unary("Exp", uniform, (*onnx.Graph).Exp)
	unary("Log", positive, (*onnx.Graph).Log)
	unary("Sigmoid", uniform, (*onnx.Graph).Sigmoid)
	unary("Tanh", uniform, (*onnx.Graph).Tanh)
	unary("Abs", awayZero, (*onnx.Graph).Abs)
	unary("Relu", awayZero, (*onnx.Graph).Relu)
	unary("Sin", uniform, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Node("Sin", "", []*onnx.Value{x}, nil, onnx.OutSpec{Type: x.Type, Shape: x.Shape})[0]
	})
	unary("Cos", uniform, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Node("Cos", "", []*onnx.Value{x}, nil, onnx.OutSpec{Type: x.Type, Shape: x.Shape})[0]
	})
	unary("Cast/double", uniform, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Cast(x, onnx.Double) })

	binary := []struct {
		op     string
		da, db dist
		f      func(g *onnx.Graph, a, b *onnx.Value) *onnx.Value
	}{
		{"Add", uniform, uniform, (*onnx.Graph).Add},
		{"Sub", uniform, uniform, (*onnx.Graph).Sub},
		{"Mul", uniform, uniform, (*onnx.Graph).Mul},
		{"Div", uniform, awayZero, (*onnx.Graph).Div},
		{"Pow", positive, uniform, (*onnx.Graph).Pow},
		{"Max", uniform, uniform, (*onnx.Graph).Max},
		{"Min", uniform, uniform, (*onnx.Graph).Min},
		{"Sum", uniform, uniform, func(g *onnx.Graph, a, b *onnx.Value) *onnx.Value { return g.Sum(a, b) }},
	}
	for _, op := range binary {
		for _, pat := range binaryPatterns {
			cs = append(cs, gradCase{
				name: op.op + "/" + pat.name,
				params: []pspec{
					{name: "a", dims: pat.a, sym: pat.symA, dist: op.da},
					{name: "b", dims: pat.b, dist: op.db},
				},
				build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return op.f(g, p[0], p[1]) },
				outDims: pat.outDim,
			})
		}
	}
	one := func(name string, d dist, dims []int64, f func(g *onnx.Graph, x *onnx.Value) *onnx.Value) {
		cs = append(cs, gradCase{name: name, params: []pspec{{name: "x", dims: dims, dist: d}},
			build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return f(g, p[0]) }})
	}
	one("Mul/self", uniform, []int64{2, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Mul(x, x) })
	for _, e := range []float64{2, 3, 0.5, -1.5, 1} {
		one(fmt.Sprintf("Pow/const%g", e), positive, []int64{2, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
			return g.Pow(x, g.Scalar(onnx.Double, e))
		})
	}
	one("Pow/intexp", positive, []int64{2, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Pow(x, iconst(g, []int64{3}, 1, 2, 3))
	})
	cs = append(cs, gradCase{name: "Sum/three", params: []pspec{
		{name: "a", dims: []int64{2, 3}}, {name: "b", dims: []int64{3}}, {name: "c", dims: []int64{2, 1}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Sum(p...) }})

	// Where, Clip
	cs = append(cs, gradCase{name: "Where/broadcast", params: []pspec{
		{name: "x", dims: []int64{3, 1}}, {name: "y", dims: []int64{4}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			cond := bconst(g, []int64{2, 1, 4}, true, false, false, true, true, true, false, false)
			return g.Where(cond, p[0], p[1])
		}})
	cs = append(cs, gradCase{name: "Where/same", params: []pspec{
		{name: "x", dims: []int64{2, 2}}, {name: "y", dims: []int64{2, 2}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			return g.Where(bconst(g, []int64{2, 2}, true, false, false, true), p[0], p[1])
		}})
	one("Clip/const", uniform, []int64{3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Clip(x, g.Scalar(onnx.Double, -1), g.Scalar(onnx.Double, 0.8))
	})
	one("Clip/maxonly", uniform, []int64{3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Clip(x, nil, g.Scalar(onnx.Double, 0.5))
	})
	cs = append(cs, gradCase{name: "Clip/bounds", params: []pspec{
		{name: "x", dims: []int64{3, 4}}, {name: "lo", lo: -1.2, hi: -0.7}, {name: "hi", lo: 0.6, hi: 1.1}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Clip(p[0], p[1], p[2]) }})

	// Softmax family.
	one("Softmax/last", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Softmax(x, -1) })
	one("Softmax/axis1", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Softmax(x, 1) })
	one("LogSoftmax/last", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.LogSoftmax(x, -1) })
	one("LogSoftmax/axis1", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.LogSoftmax(x, 1) })
	pick := func(g *onnx.Graph) *onnx.Value {
		return iconst(g, []int64{2, 3, 1}, 0, 4, 2, 2, 1, 3)
	}
	one("LogSoftmax/gathered", uniform, []int64{2, 3, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.GatherElements(g.LogSoftmax(x, -1), pick(g), -1)
	})
	one("LogSoftmax/gathered2", uniform, []int64{2, 3, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		idx := iconst(g, []int64{2, 3, 2}, 0, 0, 4, 1, 2, 2, 3, 2, 1, 1, 3, 0)
		return g.GatherElements(g.LogSoftmax(x, 2), idx, 2)
	})
	one("LogSoftmax/gathered+entropy", uniform, []int64{2, 3, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		ls := g.LogSoftmax(x, -1)
		ent := g.ReduceSum(g.Mul(g.Exp(ls), ls), true, -1)
		return g.Add(g.GatherElements(ls, pick(g), -1), ent)
	})
	one("LogSoftmax/gathered-other-axis", uniform, []int64{2, 3, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		// Picked along an axis other than the softmax's: densified, not fused.
		idx := iconst(g, []int64{2, 1, 5}, 0, 2, 1, 1, 0, 2, 2, 0, 1, 0)
		return g.GatherElements(g.LogSoftmax(x, -1), idx, 1)
	})
	one("Softmax/gathered", uniform, []int64{2, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.GatherElements(g.Softmax(x, -1), iconst(g, []int64{2, 1}, 3, 0), -1)
	})
	cs = append(cs, gradCase{name: "LogSoftmax/gathered-symbolic",
		params: []pspec{{name: "x", dims: []int64{2, 3, 5}, sym: []string{"batch", "seq", ""}}},
		feeds:  []feed{{"ids", []int64{2, 3}, []int64{1, 4, 0, 0, 3, 2}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			ids := g.Input("ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("seq"))
			return g.Squeeze(g.GatherElements(g.LogSoftmax(p[0], -1), g.Unsqueeze(ids, -1), -1), -1)
		},
		outDims: []int64{2, 3}})

	// Reductions.
	for _, red := range []struct {
		op string
		f  func(g *onnx.Graph, x *onnx.Value, keep bool, axes ...int) *onnx.Value
	}{{"ReduceSum", (*onnx.Graph).ReduceSum}, {"ReduceMean", (*onnx.Graph).ReduceMean}, {"ReduceMax", (*onnx.Graph).ReduceMax}} {
		one(red.op+"/axis1keep", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return red.f(g, x, true, 1) })
		one(red.op+"/axes02", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return red.f(g, x, false, 0, 2) })
		one(red.op+"/all", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return red.f(g, x, false) })
		one(red.op+"/neg", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return red.f(g, x, false, -1) })
		cs = append(cs, gradCase{name: red.op + "/symbolic",
			params: []pspec{{name: "x", dims: []int64{2, 3, 4}, sym: []string{"b", "t", ""}}},
			build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
				return red.f(g, p[0], true, 1)
			},
			outDims: []int64{2, 1, 4}})
	}

	// MatMul.
	for _, mm := range []struct {
		name string
		a, b []int64
		symA []string
		out  []int64
	}{
		{"2d", []int64{3, 4}, []int64{4, 5}, nil, nil},
		{"weight3d", []int64{2, 3, 4}, []int64{4, 5}, nil, nil},
		{"weight4d", []int64{2, 2, 3, 4}, []int64{4, 2}, nil, nil},
		{"batch4d", []int64{2, 2, 3, 4}, []int64{2, 2, 4, 5}, nil, nil},
		{"broadcast", []int64{2, 1, 3, 4}, []int64{3, 4, 2}, nil, nil},
		{"lhs2d", []int64{3, 4}, []int64{2, 4, 5}, nil, nil},
		{"symbolic", []int64{2, 3, 4}, []int64{4, 5}, []string{"b", "t", ""}, []int64{2, 3, 5}},
	} {
		cs = append(cs, gradCase{name: "MatMul/" + mm.name,
			params:  []pspec{{name: "a", dims: mm.a, sym: mm.symA}, {name: "b", dims: mm.b}},
			build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.MatMul(p[0], p[1]) },
			outDims: mm.out})
	}

	cs = append(cs, gradCase{name: "MatMul/linear",
		params: []pspec{{name: "a", dims: []int64{2, 3, 4}}, {name: "w", dims: []int64{5, 4}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			return g.MatMul(p[0], g.Transpose(p[1], 1, 0))
		}})
	cs = append(cs, gradCase{name: "MatMul/linear-shared",
		params: []pspec{{name: "a", dims: []int64{3, 4}}, {name: "w", dims: []int64{5, 4}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			wt := g.Transpose(p[1], 1, 0)
			return g.Concat(0, g.MatMul(p[0], wt), g.Mul(wt, wt))
		}})

	// Shape ops.
	one("Reshape", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Reshape(x, 0, -1) })
	cs = append(cs, gradCase{name: "Reshape/symbolic",
		params:  []pspec{{name: "x", dims: []int64{2, 3, 4}, sym: []string{"b", "", ""}}},
		build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Reshape(p[0], 0, 2, 6) },
		outDims: []int64{2, 2, 6}})
	cs = append(cs, gradCase{name: "Reshape/infer",
		params:  []pspec{{name: "x", dims: []int64{2, 3, 4}, sym: []string{"b", "t", ""}}},
		build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Reshape(p[0], 0, -1) },
		outDims: []int64{2, 12}})
	cs = append(cs, gradCase{name: "Reshape/two-unknown",
		params:  []pspec{{name: "x", dims: []int64{2, 3, 4}, sym: []string{"b", "t", ""}}},
		build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Reshape(p[0], -1, 4) },
		outDims: []int64{6, 4}})
	one("Squeeze", uniform, []int64{2, 1, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Squeeze(x, 1) })
	one("Unsqueeze", uniform, []int64{2, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Unsqueeze(x, 1, 3) })
	one("Flatten", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Node("Flatten", "", []*onnx.Value{x}, onnx.Attrs{"axis": int64(1)}, onnx.OutSpec{Type: x.Type, Shape: onnx.Dims(2, 12)})[0]
	})
	one("Transpose", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Transpose(x, 2, 0, 1) })
	one("Transpose/default", uniform, []int64{2, 3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Node("Transpose", "", []*onnx.Value{x}, nil, onnx.OutSpec{Type: x.Type, Shape: onnx.Dims(4, 3, 2)})[0]
	})
	cs = append(cs, gradCase{name: "Concat", params: []pspec{
		{name: "a", dims: []int64{2, 3}}, {name: "b", dims: []int64{2, 2}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			return g.Concat(1, p[0], p[1], dconst(g, []int64{2, 1}, 5, 6), p[0])
		}})
	cs = append(cs, gradCase{name: "Concat/symbolic", params: []pspec{
		{name: "a", dims: []int64{2, 3}, sym: []string{"", "n"}}, {name: "b", dims: []int64{2, 2}}},
		build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Concat(-1, p[0], p[1]) },
		outDims: []int64{2, 5}})
	one("Split", uniform, []int64{2, 6}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		parts := g.Split(x, 1, 1, 2, 3)
		return g.Concat(1, parts[2], parts[0])
	})
	one("Slice", uniform, []int64{3, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Slice(x, []int64{1}, []int64{1}, []int64{4})
	})
	one("Slice/negative", uniform, []int64{3, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Slice(x, []int64{-1, 0}, []int64{-3, 1}, []int64{math.MaxInt64, -1})
	})
	cs = append(cs, gradCase{name: "Slice/symbolic",
		params: []pspec{{name: "x", dims: []int64{2, 4, 3}, sym: []string{"b", "t", ""}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			return g.Slice(p[0], []int64{1}, []int64{0}, []int64{-1})
		},
		outDims: []int64{2, 3, 3}})
	cs = append(cs, gradCase{name: "Slice/runtime",
		params: []pspec{{name: "x", dims: []int64{2, 5}, sym: []string{"", "t"}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			return g.Slice(p[0], []int64{1}, []int64{-3}, []int64{4})
		},
		outDims: []int64{2, 2}})
	cs = append(cs, gradCase{name: "Slice/dynamic",
		params: []pspec{{name: "x", dims: []int64{2, 5}}},
		feeds:  []feed{{"starts", []int64{1}, []int64{-4}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			starts := g.Input("starts", onnx.Int64, onnx.D(1))
			return g.SliceDynamic(p[0], starts, g.Ints(3), g.Ints(1), onnx.Shape{onnx.D(2), onnx.Unknown})
		},
		outDims: []int64{2, 2}})
	one("Expand", uniform, []int64{3, 1}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Expand(x, g.Ints(2, 3, 4), onnx.Dims(2, 3, 4))
	})
	one("Tile", uniform, []int64{2, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Tile(x, 2, 3) })
	cs = append(cs, gradCase{name: "Tile/symbolic",
		params:  []pspec{{name: "x", dims: []int64{2, 3}, sym: []string{"b", ""}}},
		build:   func(g *onnx.Graph, p []*onnx.Value) *onnx.Value { return g.Tile(p[0], 1, 2) },
		outDims: []int64{2, 6}})

	// Gathers.
	one("Gather/embedding", uniform, []int64{5, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Gather(x, iconst(g, []int64{2, 3}, 0, 4, 4, 1, 0, 4), 0)
	})
	one("Gather/negative", uniform, []int64{5, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Gather(x, iconst(g, []int64{3}, -1, 4, 2), 0)
	})
	one("Gather/axis1", uniform, []int64{2, 5, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Gather(x, iconst(g, []int64{2, 2}, 1, 3, 3, 0), 1)
	})
	one("Gather/scalar", uniform, []int64{2, 5}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Gather(x, iconst(g, nil, 3), 1)
	})
	one("GatherElements/axis1", uniform, []int64{3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.GatherElements(x, iconst(g, []int64{3, 2}, 0, 0, 3, 1, 2, -1), 1)
	})
	one("GatherElements/axis0", uniform, []int64{3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.GatherElements(x, iconst(g, []int64{2, 4}, 0, 2, 1, 1, 2, 2, 0, 1), 0)
	})
	one("GatherElements/twice", uniform, []int64{3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		a := g.GatherElements(x, iconst(g, []int64{3, 1}, 0, 3, 1), 1)
		return g.Add(g.Mul(a, g.GatherElements(x, iconst(g, []int64{3, 1}, 2, 3, 0), 1)), x)
	})

	// Misc.
	cs = append(cs, gradCase{name: "Cast/float", dt: onnx.Float, tol: 1e-5,
		params: []pspec{{name: "x", dims: []int64{2, 3}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			d := g.Cast(p[0], onnx.Double)
			return g.Mul(d, d)
		}})
	one("Trilu/upper", uniform, []int64{3, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.Trilu(x, g.Const(onnx.Int64Tensor(nil, []int64{1})), true)
	})
	one("Trilu/lower", uniform, []int64{2, 3, 3}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.Trilu(x, nil, false) })
	one("CumSum", uniform, []int64{2, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value { return g.CumSum(x, 1) })
	one("CumSum/reverse-exclusive", uniform, []int64{2, 4}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.CumSumDir(x, 1, true, true)
	})
	one("CumSum/exclusive", uniform, []int64{3, 2}, func(g *onnx.Graph, x *onnx.Value) *onnx.Value {
		return g.CumSumDir(x, 0, true, false)
	})
	cs = append(cs, gradCase{name: "SimplifiedLayerNormalization",
		params: []pspec{{name: "x", dims: []int64{2, 3, 4}}, {name: "scale", dims: []int64{4}}},
		build: func(g *onnx.Graph, p []*onnx.Value) *onnx.Value {
			return g.Node("SimplifiedLayerNormalization", "", p, onnx.Attrs{"axis": int64(-1), "epsilon": float32(1e-5), "stash_type": int64(1)},
				onnx.OutSpec{Type: p[0].Type, Shape: p[0].Shape})[0]
		}})
	return cs
}

// TestOpGradients checks every rule by central differences through ONNX
// Runtime's CPU provider. Every forward op, and every op the backward passes
// emit (ScatterND/ScatterElements with reduction add, Pad, reversed CumSum,
// Sum, Split, Expand, ConstantOfShape, ...), runs in float64 there (ORT
// 1.29), so all cases are float64 except "Cast/float", which differentiates
// through a float32 → float64 cast on purpose.
func TestOpGradients(t *testing.T) {
	initORT(t)
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) { checkCase(t, c) })
	}
	if t.Failed() {
		return
	}
	for _, op := range Ops() {
		if !covered[op] {
			t.Errorf("rule %s has no passing finite-difference check", op)
		}
	}
}
