package onnx

// Typed helpers for the operators that backward passes (onnx/grad) emit and
// that ops.go does not cover. Like ops.go they follow opset 21 semantics and
// panic on misuse.

// Sum adds any number of values of one dtype, with broadcasting, in one node.
func (g *Graph) Sum(xs ...*Value) *Value {
	if len(xs) == 0 {
		panic("onnx: Sum of no values")
	}
	shape := xs[0].Shape
	for _, x := range xs[1:] {
		if x.Type != xs[0].Type {
			panic("onnx: Sum: dtype mismatch " + xs[0].String() + " vs " + x.String())
		}
		shape = broadcastShape(shape, x.Shape)
	}
	return g.Node("Sum", "", xs, nil, OutSpec{xs[0].Type, shape})[0]
}

// Size is the number of elements of x as a rank-0 int64 tensor.
func (g *Graph) Size(x *Value) *Value {
	return g.Node("Size", "", []*Value{x}, nil, OutSpec{Int64, nil})[0]
}

// Pad pads x with zeros. pads is an int64 vector [begin_0.., end_0..] over
// the axes in the int64 vector axes (nil: all axes, in order); out is the
// static result shape to record.
func (g *Graph) Pad(x, pads, axes *Value, out Shape) *Value {
	in := []*Value{x, pads}
	if axes != nil {
		in = append(in, nil, axes)
	}
	return g.Node("Pad", "", in, nil, OutSpec{x.Type, out})[0]
}

// CumSumDir is CumSum with its attributes: exclusive leaves each element out
// of its own sum, reverse sums from the end of the axis.
func (g *Graph) CumSumDir(x *Value, axis int, exclusive, reverse bool) *Value {
	a := normAxis(axis, x.Rank())
	attrs := Attrs{}
	if exclusive {
		attrs["exclusive"] = int64(1)
	}
	if reverse {
		attrs["reverse"] = int64(1)
	}
	return g.Node("CumSum", "", []*Value{x, g.Const(Int64Tensor(nil, []int64{int64(a)}))}, attrs, OutSpec{x.Type, x.Shape})[0]
}

// SplitBy splits x along axis into pieces whose sizes are held in the int64
// vector sizes (known only at run time); outs are the static piece shapes.
func (g *Graph) SplitBy(x, sizes *Value, axis int, outs ...Shape) []*Value {
	a := normAxis(axis, x.Rank())
	specs := make([]OutSpec, len(outs))
	for i, s := range outs {
		specs[i] = OutSpec{x.Type, s}
	}
	return g.Node("Split", "", []*Value{x, sizes}, Attrs{"axis": int64(a)}, specs...)
}
