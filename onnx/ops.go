package onnx

import (
	"fmt"
)

// Typed helpers for the standard ONNX operators the project uses (opset 21
// semantics: axes of reductions, Squeeze/Unsqueeze and Slice are inputs). Each
// infers its output dtype and shape; a dim that cannot be inferred statically
// is Unknown. Helpers panic on misuse (wrong ranks, mismatched dtypes): graphs
// are built by code, so such a mistake is a programming error, not bad input.

// broadcastShape applies numpy broadcasting to two shapes.
func broadcastShape(a, b Shape) Shape {
	n := max(len(a), len(b))
	out := make(Shape, n)
	for i := 0; i < n; i++ {
		var da, db Dim = D(1), D(1)
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da.Known() && da.Size == 1:
			out[i] = db
		case db.Known() && db.Size == 1:
			out[i] = da
		case da.Known() && db.Known() && da.Size != db.Size:
			panic(fmt.Sprintf("onnx: cannot broadcast %v with %v", a, b))
		case da.Known():
			out[i] = da
		default:
			out[i] = db
		}
	}
	return out
}

func (g *Graph) binary(op string, a, b *Value) *Value {
	if a.Type != b.Type {
		panic(fmt.Sprintf("onnx: %s: dtype mismatch %v vs %v", op, a, b))
	}
	return g.Node(op, "", []*Value{a, b}, nil, OutSpec{a.Type, broadcastShape(a.Shape, b.Shape)})[0]
}

func (g *Graph) compare(op string, a, b *Value) *Value {
	if a.Type != b.Type {
		panic(fmt.Sprintf("onnx: %s: dtype mismatch %v vs %v", op, a, b))
	}
	return g.Node(op, "", []*Value{a, b}, nil, OutSpec{Bool, broadcastShape(a.Shape, b.Shape)})[0]
}

func (g *Graph) unary(op string, x *Value, attrs Attrs) *Value {
	return g.Node(op, "", []*Value{x}, attrs, OutSpec{x.Type, x.Shape})[0]
}

// Add is a + b with broadcasting.
func (g *Graph) Add(a, b *Value) *Value { return g.binary("Add", a, b) }

// Sub is a - b with broadcasting.
func (g *Graph) Sub(a, b *Value) *Value { return g.binary("Sub", a, b) }

// Mul is a * b with broadcasting.
func (g *Graph) Mul(a, b *Value) *Value { return g.binary("Mul", a, b) }

// Div is a / b with broadcasting.
func (g *Graph) Div(a, b *Value) *Value { return g.binary("Div", a, b) }

// Pow is a ** b with broadcasting.
func (g *Graph) Pow(a, b *Value) *Value {
	return g.Node("Pow", "", []*Value{a, b}, nil, OutSpec{a.Type, broadcastShape(a.Shape, b.Shape)})[0]
}

// Max is the elementwise maximum of a and b.
func (g *Graph) Max(a, b *Value) *Value { return g.binary("Max", a, b) }

// Min is the elementwise minimum of a and b.
func (g *Graph) Min(a, b *Value) *Value { return g.binary("Min", a, b) }

// Equal is a == b (bool).
func (g *Graph) Equal(a, b *Value) *Value { return g.compare("Equal", a, b) }

// Less is a < b (bool).
func (g *Graph) Less(a, b *Value) *Value { return g.compare("Less", a, b) }

// Greater is a > b (bool).
func (g *Graph) Greater(a, b *Value) *Value { return g.compare("Greater", a, b) }

// LessOrEqual is a <= b (bool).
func (g *Graph) LessOrEqual(a, b *Value) *Value { return g.compare("LessOrEqual", a, b) }

// GreaterOrEqual is a >= b (bool).
func (g *Graph) GreaterOrEqual(a, b *Value) *Value { return g.compare("GreaterOrEqual", a, b) }

// And is the logical and of two bool tensors.
func (g *Graph) And(a, b *Value) *Value { return g.binary("And", a, b) }

// Or is the logical or of two bool tensors.
func (g *Graph) Or(a, b *Value) *Value { return g.binary("Or", a, b) }

// Not is the logical negation of a bool tensor.
func (g *Graph) Not(x *Value) *Value { return g.unary("Not", x, nil) }

// Where selects x where cond is true, else y, with broadcasting.
func (g *Graph) Where(cond, x, y *Value) *Value {
	if x.Type != y.Type {
		panic(fmt.Sprintf("onnx: Where: dtype mismatch %v vs %v", x, y))
	}
	shape := broadcastShape(broadcastShape(cond.Shape, x.Shape), y.Shape)
	return g.Node("Where", "", []*Value{cond, x, y}, nil, OutSpec{x.Type, shape})[0]
}

// Neg is -x.
func (g *Graph) Neg(x *Value) *Value { return g.unary("Neg", x, nil) }

// Exp is e**x.
func (g *Graph) Exp(x *Value) *Value { return g.unary("Exp", x, nil) }

// Log is the natural logarithm.
func (g *Graph) Log(x *Value) *Value { return g.unary("Log", x, nil) }

// Sqrt is the square root.
func (g *Graph) Sqrt(x *Value) *Value { return g.unary("Sqrt", x, nil) }

// Reciprocal is 1/x.
func (g *Graph) Reciprocal(x *Value) *Value { return g.unary("Reciprocal", x, nil) }

// Sigmoid is 1/(1+e**-x).
func (g *Graph) Sigmoid(x *Value) *Value { return g.unary("Sigmoid", x, nil) }

// Tanh is the hyperbolic tangent.
func (g *Graph) Tanh(x *Value) *Value { return g.unary("Tanh", x, nil) }

// Abs is |x|.
func (g *Graph) Abs(x *Value) *Value { return g.unary("Abs", x, nil) }

// Sign is -1, 0 or 1 by the sign of x.
func (g *Graph) Sign(x *Value) *Value { return g.unary("Sign", x, nil) }

// Relu is max(x, 0).
func (g *Graph) Relu(x *Value) *Value { return g.unary("Relu", x, nil) }

// Identity passes x through.
func (g *Graph) Identity(x *Value) *Value { return g.unary("Identity", x, nil) }

// Softmax along axis.
func (g *Graph) Softmax(x *Value, axis int) *Value {
	return g.unary("Softmax", x, Attrs{"axis": int64(axis)})
}

// LogSoftmax along axis.
func (g *Graph) LogSoftmax(x *Value, axis int) *Value {
	return g.unary("LogSoftmax", x, Attrs{"axis": int64(axis)})
}

// Cast converts x to dtype to.
func (g *Graph) Cast(x *Value, to DType) *Value {
	return g.Node("Cast", "", []*Value{x}, Attrs{"to": int64(to)}, OutSpec{to, x.Shape})[0]
}

// Clip limits x to [lo, hi]; either bound may be nil.
func (g *Graph) Clip(x, lo, hi *Value) *Value {
	return g.Node("Clip", "", []*Value{x, lo, hi}, nil, OutSpec{x.Type, x.Shape})[0]
}

// MatMul is numpy matmul with batch broadcasting; both operands have rank ≥ 2.
func (g *Graph) MatMul(a, b *Value) *Value {
	if a.Rank() < 2 || b.Rank() < 2 {
		panic(fmt.Sprintf("onnx: MatMul needs rank ≥ 2: %v, %v", a, b))
	}
	if a.Type != b.Type {
		panic(fmt.Sprintf("onnx: MatMul: dtype mismatch %v vs %v", a, b))
	}
	batch := broadcastShape(a.Shape[:a.Rank()-2], b.Shape[:b.Rank()-2])
	out := append(batch, a.Shape[a.Rank()-2], b.Shape[b.Rank()-1])
	return g.Node("MatMul", "", []*Value{a, b}, nil, OutSpec{a.Type, out})[0]
}

// normAxis turns a possibly negative axis into 0..rank-1.
func normAxis(axis, rank int) int {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		panic(fmt.Sprintf("onnx: axis %d out of range for rank %d", axis, rank))
	}
	return axis
}

// Ints makes a 1-D int64 constant.
func (g *Graph) Ints(vals ...int64) *Value {
	return g.Const(Int64Tensor([]int64{int64(len(vals))}, vals))
}

// Scalar makes a rank-0 constant of dtype dt.
func (g *Graph) Scalar(dt DType, x float64) *Value { return g.Const(ScalarTensor(dt, x)) }

func (g *Graph) reduce(op string, x *Value, axes []int, keepDims bool) *Value {
	r := x.Rank()
	drop := map[int]bool{}
	ax := make([]int64, len(axes))
	for i, a := range axes {
		n := normAxis(a, r)
		drop[n] = true
		ax[i] = int64(n)
	}
	var out Shape
	for i, d := range x.Shape {
		switch {
		case !drop[i]:
			out = append(out, d)
		case keepDims:
			out = append(out, D(1))
		}
	}
	keep := int64(0)
	if keepDims {
		keep = 1
	}
	inputs := []*Value{x}
	if len(axes) > 0 {
		inputs = append(inputs, g.Ints(ax...))
	}
	return g.Node(op, "", inputs, Attrs{"keepdims": keep}, OutSpec{x.Type, out})[0]
}

// ReduceSum sums over axes (all axes when none are given).
func (g *Graph) ReduceSum(x *Value, keepDims bool, axes ...int) *Value {
	if len(axes) == 0 {
		axes = allAxes(x.Rank())
	}
	return g.reduce("ReduceSum", x, axes, keepDims)
}

// ReduceMean averages over axes (all axes when none are given).
func (g *Graph) ReduceMean(x *Value, keepDims bool, axes ...int) *Value {
	if len(axes) == 0 {
		axes = allAxes(x.Rank())
	}
	return g.reduce("ReduceMean", x, axes, keepDims)
}

// ReduceMax takes the maximum over axes (all axes when none are given).
func (g *Graph) ReduceMax(x *Value, keepDims bool, axes ...int) *Value {
	if len(axes) == 0 {
		axes = allAxes(x.Rank())
	}
	return g.reduce("ReduceMax", x, axes, keepDims)
}

func allAxes(rank int) []int {
	a := make([]int, rank)
	for i := range a {
		a[i] = i
	}
	return a
}

// Reshape reshapes x to target, with ONNX semantics: 0 copies the input dim at
// that position, -1 is inferred.
func (g *Graph) Reshape(x *Value, target ...int64) *Value {
	out := make(Shape, len(target))
	infer := -1
	for i, t := range target {
		switch {
		case t > 0:
			out[i] = D(t)
		case t == 0:
			out[i] = x.Shape[i]
		case t == -1:
			infer = i
		default:
			panic(fmt.Sprintf("onnx: Reshape target %v", target))
		}
	}
	if infer >= 0 {
		out[infer] = Unknown
		if n := x.Shape.NumElements(); n >= 0 {
			rest := int64(1)
			known := true
			for i, d := range out {
				if i == infer {
					continue
				}
				if !d.Known() {
					known = false
					break
				}
				rest *= d.Size
			}
			if known && rest > 0 {
				out[infer] = D(n / rest)
			}
		}
	}
	return g.Node("Reshape", "", []*Value{x, g.Ints(target...)}, nil, OutSpec{x.Type, out})[0]
}

// ReshapeLike reshapes x to the runtime shape held in the int64 vector shape,
// recording out as the static shape.
func (g *Graph) ReshapeLike(x, shape *Value, out Shape) *Value {
	return g.Node("Reshape", "", []*Value{x, shape}, nil, OutSpec{x.Type, out})[0]
}

// Transpose permutes the axes of x.
func (g *Graph) Transpose(x *Value, perm ...int) *Value {
	if len(perm) != x.Rank() {
		panic(fmt.Sprintf("onnx: Transpose perm %v for %v", perm, x))
	}
	out := make(Shape, len(perm))
	p := make([]int64, len(perm))
	for i, a := range perm {
		out[i] = x.Shape[a]
		p[i] = int64(a)
	}
	return g.Node("Transpose", "", []*Value{x}, Attrs{"perm": p}, OutSpec{x.Type, out})[0]
}

// Unsqueeze inserts size-1 axes at the given output positions.
func (g *Graph) Unsqueeze(x *Value, axes ...int) *Value {
	r := x.Rank() + len(axes)
	ins := map[int]bool{}
	ax := make([]int64, len(axes))
	for i, a := range axes {
		n := normAxis(a, r)
		ins[n] = true
		ax[i] = int64(n)
	}
	out := make(Shape, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, D(1))
		} else {
			out = append(out, x.Shape[j])
			j++
		}
	}
	return g.Node("Unsqueeze", "", []*Value{x, g.Ints(ax...)}, nil, OutSpec{x.Type, out})[0]
}

// Squeeze removes the given size-1 axes.
func (g *Graph) Squeeze(x *Value, axes ...int) *Value {
	drop := map[int]bool{}
	ax := make([]int64, len(axes))
	for i, a := range axes {
		n := normAxis(a, x.Rank())
		drop[n] = true
		ax[i] = int64(n)
	}
	var out Shape
	for i, d := range x.Shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return g.Node("Squeeze", "", []*Value{x, g.Ints(ax...)}, nil, OutSpec{x.Type, out})[0]
}

// Concat joins values along axis.
func (g *Graph) Concat(axis int, xs ...*Value) *Value {
	a := normAxis(axis, xs[0].Rank())
	out := append(Shape(nil), xs[0].Shape...)
	total := int64(0)
	for _, x := range xs {
		if !x.Shape[a].Known() {
			total = -1
			break
		}
		total += x.Shape[a].Size
	}
	if total >= 0 {
		out[a] = D(total)
	} else {
		out[a] = Unknown
	}
	return g.Node("Concat", "", xs, Attrs{"axis": int64(a)}, OutSpec{xs[0].Type, out})[0]
}

// Slice takes x[starts:ends] along axes with unit steps; ends may be large
// (math.MaxInt64) for "to the end", and negative indices count from the end.
func (g *Graph) Slice(x *Value, axes, starts, ends []int64) *Value {
	out := append(Shape(nil), x.Shape...)
	for i, a := range axes {
		ax := normAxis(int(a), x.Rank())
		d := x.Shape[ax]
		if !d.Known() {
			out[ax] = Unknown
			continue
		}
		clamp := func(v int64) int64 {
			if v < 0 {
				v += d.Size
			}
			return max(0, min(v, d.Size))
		}
		out[ax] = D(max(0, clamp(ends[i])-clamp(starts[i])))
	}
	return g.Node("Slice", "", []*Value{x, g.Ints(starts...), g.Ints(ends...), g.Ints(axes...)}, nil, OutSpec{x.Type, out})[0]
}

// SliceDynamic is Slice with runtime starts/ends/axes vectors; out is the
// static shape to record.
func (g *Graph) SliceDynamic(x, starts, ends, axes *Value, out Shape) *Value {
	return g.Node("Slice", "", []*Value{x, starts, ends, axes}, nil, OutSpec{x.Type, out})[0]
}

// Expand broadcasts x to the runtime shape held in the int64 vector shape;
// out is the static result shape to record.
func (g *Graph) Expand(x, shape *Value, out Shape) *Value {
	return g.Node("Expand", "", []*Value{x, shape}, nil, OutSpec{x.Type, out})[0]
}

// Shape is the runtime shape of x as a 1-D int64 tensor.
func (g *Graph) Shape(x *Value) *Value {
	return g.Node("Shape", "", []*Value{x}, nil, OutSpec{Int64, Dims(int64(x.Rank()))})[0]
}

// Gather takes slices of data along axis at indices (the embedding lookup).
func (g *Graph) Gather(data, indices *Value, axis int) *Value {
	a := normAxis(axis, data.Rank())
	out := append(Shape(nil), data.Shape[:a]...)
	out = append(out, indices.Shape...)
	out = append(out, data.Shape[a+1:]...)
	return g.Node("Gather", "", []*Value{data, indices}, Attrs{"axis": int64(a)}, OutSpec{data.Type, out})[0]
}

// GatherElements picks data elements along axis at indices (same rank).
func (g *Graph) GatherElements(data, indices *Value, axis int) *Value {
	a := normAxis(axis, data.Rank())
	return g.Node("GatherElements", "", []*Value{data, indices}, Attrs{"axis": int64(a)}, OutSpec{data.Type, indices.Shape})[0]
}

// ScatterND writes (or with reduction "add", accumulates) updates into a copy
// of data at indices.
func (g *Graph) ScatterND(data, indices, updates *Value, reduction string) *Value {
	var attrs Attrs
	if reduction != "" && reduction != "none" {
		attrs = Attrs{"reduction": reduction}
	}
	return g.Node("ScatterND", "", []*Value{data, indices, updates}, attrs, OutSpec{data.Type, data.Shape})[0]
}

// ScatterElements writes (or accumulates) updates into a copy of data along
// axis at indices.
func (g *Graph) ScatterElements(data, indices, updates *Value, axis int, reduction string) *Value {
	attrs := Attrs{"axis": int64(normAxis(axis, data.Rank()))}
	if reduction != "" && reduction != "none" {
		attrs["reduction"] = reduction
	}
	return g.Node("ScatterElements", "", []*Value{data, indices, updates}, attrs, OutSpec{data.Type, data.Shape})[0]
}

// ConstantOfShape makes a tensor of the runtime shape (an int64 vector) filled
// with the scalar fill; out is the static shape to record.
func (g *Graph) ConstantOfShape(shape *Value, fill *Tensor, out Shape) *Value {
	return g.Node("ConstantOfShape", "", []*Value{shape}, Attrs{"value": fill}, OutSpec{fill.DType, out})[0]
}

// CumSum is the cumulative sum along the axis held in the scalar axis value.
func (g *Graph) CumSum(x *Value, axis int) *Value {
	a := normAxis(axis, x.Rank())
	return g.Node("CumSum", "", []*Value{x, g.Const(Int64Tensor(nil, []int64{int64(a)}))}, nil, OutSpec{x.Type, x.Shape})[0]
}

// Range is start, start+delta, ... below limit (scalars of one dtype).
func (g *Graph) Range(start, limit, delta *Value) *Value {
	return g.Node("Range", "", []*Value{start, limit, delta}, nil, OutSpec{start.Type, Shape{Unknown}})[0]
}

// Trilu keeps the upper (upper=true) or lower triangle of the last two axes,
// shifted by the scalar int64 k (nil for 0).
func (g *Graph) Trilu(x, k *Value, upper bool) *Value {
	u := int64(0)
	if upper {
		u = 1
	}
	in := []*Value{x}
	if k != nil {
		in = append(in, k)
	}
	return g.Node("Trilu", "", in, Attrs{"upper": u}, OutSpec{x.Type, x.Shape})[0]
}

// Split splits x along axis into pieces of the given sizes.
func (g *Graph) Split(x *Value, axis int, sizes ...int64) []*Value {
	a := normAxis(axis, x.Rank())
	outs := make([]OutSpec, len(sizes))
	for i, s := range sizes {
		sh := append(Shape(nil), x.Shape...)
		sh[a] = D(s)
		outs[i] = OutSpec{x.Type, sh}
	}
	return g.Node("Split", "", []*Value{x, g.Ints(sizes...)}, Attrs{"axis": int64(a)}, outs...)
}

// Tile repeats x by the int64 vector repeats.
func (g *Graph) Tile(x *Value, repeats ...int64) *Value {
	out := make(Shape, x.Rank())
	for i, d := range x.Shape {
		if d.Known() {
			out[i] = D(d.Size * repeats[i])
		} else if repeats[i] == 1 {
			out[i] = d
		} else {
			out[i] = Unknown
		}
	}
	return g.Node("Tile", "", []*Value{x, g.Ints(repeats...)}, nil, OutSpec{x.Type, out})[0]
}
