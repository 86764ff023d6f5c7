package grad

import (
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

func TestUnknownOpOnPathIsAnError(t *testing.T) {
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float, onnx.D(3))
	y := g.Node("Erf", "", []*onnx.Value{x}, nil, onnx.OutSpec{Type: onnx.Float, Shape: x.Shape})[0]
	loss := g.ReduceSum(y, false)
	_, err := Backward(g, loss, []*onnx.Value{x}, Options{})
	if err == nil || !strings.Contains(err.Error(), "op Erf") || !strings.Contains(err.Error(), y.Producer.Name) {
		t.Fatalf("err = %v, want one naming op Erf and node %s", err, y.Producer.Name)
	}

	// A contrib op is named with its domain.
	g = onnx.NewGraph("t")
	x = g.Input("x", onnx.Float, onnx.D(3))
	y = g.Node("FastGelu", onnx.MicrosoftDomain, []*onnx.Value{x}, nil, onnx.OutSpec{Type: onnx.Float, Shape: x.Shape})[0]
	_, err = Backward(g, g.ReduceSum(y, false), []*onnx.Value{x}, Options{})
	if err == nil || !strings.Contains(err.Error(), "com.microsoft.FastGelu") {
		t.Fatalf("err = %v, want one naming com.microsoft.FastGelu", err)
	}
}

func TestUnknownOpOffPathIsFine(t *testing.T) {
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float, onnx.D(3))
	c := g.Input("c", onnx.Float, onnx.D(3))
	// Erf of a non-parameter, and an integer op on the parameter's shape.
	e := g.Node("Erf", "", []*onnx.Value{c}, nil, onnx.OutSpec{Type: onnx.Float, Shape: c.Shape})[0]
	n := g.Cast(g.Size(x), onnx.Float)
	loss := g.ReduceSum(g.Mul(g.Mul(x, e), n), false)
	if _, err := Backward(g, loss, []*onnx.Value{x}, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestNonDifferentiablePaths(t *testing.T) {
	// Shape, comparisons, Sign, integer casts and ConstantOfShape consume the
	// parameter on the way to the loss; none of them gets a rule or an error.
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float, onnx.D(2), onnx.D(3))
	shape := g.Shape(x)
	ones := g.ConstantOfShape(shape, onnx.FloatTensor([]int64{1}, []float32{1}), x.Shape)
	mask := g.Cast(g.Greater(x, g.Scalar(onnx.Float, 0)), onnx.Float)
	sign := g.Sign(x)
	asInt := g.Cast(g.Cast(x, onnx.Int64), onnx.Float)
	loss := g.ReduceSum(g.Mul(g.Sum(ones, mask, sign, asInt), x), false)
	before := len(g.Nodes)
	grads, err := Backward(g, loss, []*onnx.Value{x}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// No node differentiates Shape, Greater, Sign or the casts.
	for _, n := range g.Nodes[before:] {
		switch n.Op {
		case "Sign", "Greater", "Shape":
			t.Errorf("backward emitted %s", n.Op)
		}
	}
	if grads[0].Type != onnx.Float || grads[0].Shape.String() != "[2,3]" {
		t.Fatalf("grad %v", grads[0])
	}
}

func TestUnreachableParameter(t *testing.T) {
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float, onnx.D(3))
	unused := g.Input("unused", onnx.Float, onnx.Sym("n"), onnx.D(2))
	cut := g.Input("cut", onnx.Float, onnx.D(3))
	stop := g.Cast(g.Cast(cut, onnx.Int64), onnx.Float) // cut reaches the loss through ints only
	loss := g.ReduceSum(g.Mul(x, stop), false)
	grads, err := Backward(g, loss, []*onnx.Value{x, unused, cut}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, gv := range grads[1:] {
		if p := gv.Producer; p == nil || p.Op != "ConstantOfShape" {
			t.Errorf("unreachable parameter's gradient %v is not zeros", gv)
		}
	}
	if grads[1].Shape.String() != "[n,2]" {
		t.Errorf("zeros gradient shape %v, want [n,2]", grads[1].Shape)
	}

	g = onnx.NewGraph("t")
	x = g.Input("x", onnx.Float, onnx.D(3))
	unused = g.Input("unused", onnx.Float, onnx.D(3))
	_, err = Backward(g, g.ReduceSum(x, false), []*onnx.Value{x, unused}, Options{RequireReach: true})
	if err == nil || !strings.Contains(err.Error(), "unused") {
		t.Fatalf("err = %v, want one naming the unreachable parameter", err)
	}
}

func TestSeed(t *testing.T) {
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float, onnx.D(3))
	y := g.Mul(x, x)
	if _, err := Backward(g, y, []*onnx.Value{x}, Options{}); err == nil {
		t.Fatal("a [3] loss without a seed was accepted")
	}
	if _, err := Backward(g, y, []*onnx.Value{x}, Options{Seed: g.Input("bad", onnx.Float, onnx.D(4))}); err == nil {
		t.Fatal("a seed of the wrong shape was accepted")
	}
	if _, err := Backward(g, y, []*onnx.Value{x}, Options{Seed: g.Input("bad2", onnx.Double, onnx.D(3))}); err == nil {
		t.Fatal("a seed of the wrong dtype was accepted")
	}
	seed := g.Input("seed", onnx.Float, onnx.D(3))
	grads, err := Backward(g, y, []*onnx.Value{x}, Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("dx", grads[0])
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := openSession(t, model, false)
	res, err := s.run([]feed{
		{"x", []int64{3}, []float32{1, 2, 3}},
		{"seed", []int64{3}, []float32{1, 10, 100}},
		{"bad", []int64{4}, []float32{0, 0, 0, 0}},
		{"bad2", []int64{3}, []float64{0, 0, 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2, 40, 600}
	for i, v := range res["dx"] {
		if v != want[i] {
			t.Fatalf("dx = %v, want %v", res["dx"], want)
		}
	}
}

func TestLossIsParameter(t *testing.T) {
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float)
	grads, err := Backward(g, x, []*onnx.Value{x}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := constScalar(grads[0]); !ok || v != 1 {
		t.Fatalf("d x/d x = %v", grads[0])
	}
}

func TestPruning(t *testing.T) {
	// loss = Σ p·tanh(c) + Σ exp(c): only Mul's rule for p runs; the tanh and
	// exp branches of the non-parameter c emit nothing.
	g := onnx.NewGraph("t")
	p := g.Input("p", onnx.Float, onnx.D(4))
	c := g.Input("c", onnx.Float, onnx.D(4))
	th := g.Tanh(c)
	loss := g.Add(g.ReduceSum(g.Mul(p, th), false), g.ReduceSum(g.Exp(c), false))
	before := len(g.Nodes)
	if _, err := Backward(g, loss, []*onnx.Value{p}, Options{}); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range g.Nodes[before:] {
		ops = append(ops, n.Op)
	}
	// Add's rule passes dy through; ReduceSum's restores the axis and
	// expands; Mul's multiplies.
	if got := strings.Join(ops, ","); got != "Unsqueeze,Expand,Mul" {
		t.Fatalf("backward ops %s, want Unsqueeze,Expand,Mul", got)
	}
}

func TestFusedLogSoftmaxGather(t *testing.T) {
	// The per-token log-prob pick must not build a dense one-hot gradient:
	// no ConstantOfShape zeros of [B,T,V] feed a ScatterElements.
	g := onnx.NewGraph("t")
	logits := g.Input("logits", onnx.Float, onnx.Sym("b"), onnx.Sym("t"), onnx.D(1000))
	ids := g.Input("ids", onnx.Int64, onnx.Sym("b"), onnx.Sym("t"))
	ls := g.LogSoftmax(logits, -1)
	lp := g.Squeeze(g.GatherElements(ls, g.Unsqueeze(ids, -1), -1), -1)
	ent := g.Neg(g.ReduceSum(g.Mul(g.Exp(ls), ls), false, -1))
	loss := g.ReduceSum(g.Add(lp, ent), false)
	before := len(g.Nodes)
	if _, err := Backward(g, loss, []*onnx.Value{logits}, Options{}); err != nil {
		t.Fatal(err)
	}
	scatters := 0
	for _, n := range g.Nodes[before:] {
		switch n.Op {
		case "ConstantOfShape":
			t.Errorf("backward materialises zeros %v", n.Outputs[0])
		case "ScatterElements":
			scatters++
		}
	}
	if scatters != 1 {
		t.Errorf("%d ScatterElements, want 1", scatters)
	}
}

func TestBadParameters(t *testing.T) {
	g := onnx.NewGraph("t")
	x := g.Input("x", onnx.Float, onnx.D(3))
	ids := g.Input("ids", onnx.Int64, onnx.D(3))
	loss := g.ReduceSum(x, false)
	if _, err := Backward(g, loss, []*onnx.Value{ids}, Options{}); err == nil {
		t.Error("an int64 parameter was accepted")
	}
	if _, err := Backward(g, loss, []*onnx.Value{nil}, Options{}); err == nil {
		t.Error("a nil parameter was accepted")
	}
	if _, err := Backward(g, g.Cast(loss, onnx.Int64), []*onnx.Value{x}, Options{}); err == nil {
		t.Error("an int64 loss was accepted")
	}
	// A rule that cannot differentiate an input says which.
	g = onnx.NewGraph("t")
	x = g.Input("x", onnx.Float, onnx.D(6))
	y := g.Node("Slice", "", []*onnx.Value{x, g.Ints(0), g.Ints(6), g.Ints(0), g.Ints(2)}, nil, onnx.OutSpec{Type: onnx.Float, Shape: onnx.Dims(3)})[0]
	_, err := Backward(g, g.ReduceSum(y, false), []*onnx.Value{x}, Options{})
	if err == nil || !strings.Contains(err.Error(), "unit steps") {
		t.Errorf("err = %v, want the Slice steps error", err)
	}
}

func TestIntermediateParameter(t *testing.T) {
	// Asking for the gradient of transpose(w) as well as of w: the linear
	// layer's shortcut (recording dw on w directly) must not starve wᵀ.
	g := onnx.NewGraph("t")
	a := g.Input("a", onnx.Double, onnx.D(3), onnx.D(2))
	w := g.Input("w", onnx.Double, onnx.D(4), onnx.D(2))
	wt := g.Transpose(w, 1, 0)
	loss := g.ReduceSum(g.Mul(g.MatMul(a, wt), g.MatMul(a, wt)), false)
	grads, err := Backward(g, loss, []*onnx.Value{w, wt}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("dw", grads[0])
	g.Output("dwt", grads[1])
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	res, err := openSession(t, model, false).run([]feed{
		{"a", []int64{3, 2}, []float64{1, 2, 3, 4, 5, 6}},
		{"w", []int64{4, 2}, []float64{1, -1, 0.5, 2, -3, 1, 0, 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dw, dwt := res["dw"], res["dwt"]
	for i := range 4 {
		for j := range 2 {
			if dw[i*2+j] != dwt[j*4+i] || dw[i*2+j] == 0 {
				t.Fatalf("dw %v is not dwtᵀ %v", dw, dwt)
			}
		}
	}
}

func TestOldOpset(t *testing.T) {
	g := onnx.NewGraph("t")
	g.Opsets[""] = 13
	x := g.Input("x", onnx.Float, onnx.D(3))
	if _, err := Backward(g, g.ReduceSum(x, false), []*onnx.Value{x}, Options{}); err == nil || !strings.Contains(err.Error(), "opset 13") {
		t.Fatalf("err = %v, want an opset error", err)
	}
}
