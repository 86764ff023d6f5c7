package grad

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/igsearch/igsearch/onnx"
)

// A rule turns the gradients of a node's outputs into the gradients of the
// inputs marked in c.need, one entry per input (nil for inputs that need
// none, handled for inputs whose gradient the rule recorded itself).
// Notation in the one-line formulas: x, a, b are inputs, y the output, dy its
// gradient; "↓" is the broadcast reduction to the input's shape (sumTo).
type rule func(c *ctx) ([]*onnx.Value, error)

// rules maps ONNX-domain op types to their gradient rules.
var rules = map[string]rule{
	"Identity":       identityGrad,
	"Neg":            negGrad,
	"Add":            addGrad,
	"Sub":            subGrad,
	"Mul":            mulGrad,
	"Div":            divGrad,
	"Pow":            powGrad,
	"Sqrt":           sqrtGrad,
	"Reciprocal":     reciprocalGrad,
	"Exp":            expGrad,
	"Log":            logGrad,
	"Sigmoid":        sigmoidGrad,
	"Tanh":           tanhGrad,
	"Abs":            absGrad,
	"Relu":           reluGrad,
	"Where":          whereGrad,
	"Max":            maxGrad,
	"Min":            minGrad,
	"Clip":           clipGrad,
	"Sum":            sumGrad,
	"Softmax":        softmaxGrad,
	"LogSoftmax":     logSoftmaxGrad,
	"ReduceSum":      reduceSumGrad,
	"ReduceMean":     reduceMeanGrad,
	"ReduceMax":      reduceMaxGrad,
	"MatMul":         matMulGrad,
	"Reshape":        reshapeGrad,
	"Squeeze":        reshapeGrad,
	"Unsqueeze":      reshapeGrad,
	"Flatten":        reshapeGrad,
	"Transpose":      transposeGrad,
	"Concat":         concatGrad,
	"Split":          splitGrad,
	"Slice":          sliceGrad,
	"Expand":         expandGrad,
	"Tile":           tileGrad,
	"Gather":         gatherGrad,
	"GatherElements": gatherElementsGrad,
	"Cast":           castGrad,
	"Trilu":          triluGrad,
	"CumSum":         cumSumGrad,
	"Sin":            sinGrad,
	"Cos":            cosGrad,

	"SimplifiedLayerNormalization": simplifiedLayerNormGrad,
}

// Ops lists the op types that have a gradient rule, sorted.
func Ops() []string {
	ops := make([]string, 0, len(rules))
	for op := range rules {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

// ctx is what a rule sees: the node, which inputs need gradients, and the
// builder to emit nodes with.
type ctx struct {
	*builder
	n    *onnx.Node
	need []bool
}

// in is input i, or nil when absent.
func (c *ctx) in(i int) *onnx.Value {
	if i < len(c.n.Inputs) {
		return c.n.Inputs[i]
	}
	return nil
}

// out is output i.
func (c *ctx) out(i int) *onnx.Value { return c.n.Outputs[i] }

// dy is the dense gradient of output i, or nil.
func (c *ctx) dy(i int) *onnx.Value { return c.total(c.n.Outputs[i]) }

// needs reports whether input i needs a gradient.
func (c *ctx) needs(i int) bool { return i < len(c.need) && c.need[i] }

// dt is the dtype of the first output.
func (c *ctx) dt() onnx.DType { return c.out(0).Type }

func (c *ctx) zero() *onnx.Value { return c.scalar(c.dt(), 0) }
func (c *ctx) one() *onnx.Value  { return c.scalar(c.dt(), 1) }

// attrInt reads an integer attribute.
func (c *ctx) attrInt(name string, def int64) int64 {
	switch v := c.n.Attrs[name].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case int32:
		return int64(v)
	}
	return def
}

// attrInts reads an integer-list attribute.
func (c *ctx) attrInts(name string) ([]int64, bool) { return nodeInts(c.n, name) }

// nodeInts reads an integer-list attribute of n.
func nodeInts(n *onnx.Node, name string) ([]int64, bool) {
	switch v := n.Attrs[name].(type) {
	case []int64:
		return v, true
	case []int:
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out, true
	}
	return nil, false
}

// axis reads the "axis" attribute normalised for rank.
func (c *ctx) axis(def int64, rank int) int {
	a := int(c.attrInt("axis", def))
	if a < 0 {
		a += rank
	}
	return a
}

// constTensor is the data of a constant value: an initializer or a Constant
// node's output.
func constTensor(v *onnx.Value) *onnx.Tensor {
	if v == nil {
		return nil
	}
	if v.Init != nil {
		return v.Init
	}
	if p := v.Producer; p != nil && p.Op == "Constant" && p.Domain == "" {
		if t, ok := p.Attrs["value"].(*onnx.Tensor); ok {
			return t
		}
	}
	return nil
}

// constInts reads an integer constant (int64 or int32) as int64s.
func constInts(v *onnx.Value) ([]int64, bool) {
	t := constTensor(v)
	if t == nil || t.Validate() != nil {
		return nil, false
	}
	switch t.DType {
	case onnx.Int64:
		return t.Int64s(), true
	case onnx.Int32:
		out := make([]int64, t.NumElements())
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(t.Raw[4*i:])))
		}
		return out, true
	}
	return nil, false
}

// constScalar reads a one-element numeric constant.
func constScalar(v *onnx.Value) (float64, bool) {
	t := constTensor(v)
	if t == nil || t.NumElements() != 1 || t.Validate() != nil {
		return 0, false
	}
	switch t.DType {
	case onnx.Float:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Raw))), true
	case onnx.Double:
		return math.Float64frombits(binary.LittleEndian.Uint64(t.Raw)), true
	case onnx.Float16:
		return float64(onnx.Float16ToFloat32(binary.LittleEndian.Uint16(t.Raw))), true
	case onnx.BFloat16:
		return float64(onnx.BFloat16ToFloat32(binary.LittleEndian.Uint16(t.Raw))), true
	case onnx.Int64:
		return float64(int64(binary.LittleEndian.Uint64(t.Raw))), true
	case onnx.Int32:
		return float64(int32(binary.LittleEndian.Uint32(t.Raw))), true
	}
	return 0, false
}

// binaryGrads applies per-input formulas of a two-input broadcasting op,
// emitting only what is needed.
func (c *ctx) binaryGrads(fa, fb func() *onnx.Value) []*onnx.Value {
	dx := make([]*onnx.Value, 2)
	if c.needs(0) {
		dx[0] = fa()
	}
	if c.needs(1) {
		dx[1] = fb()
	}
	return dx
}

// identityGrad: dx = dy.
func identityGrad(c *ctx) ([]*onnx.Value, error) { return []*onnx.Value{c.dy(0)}, nil }

// negGrad: dx = -dy.
func negGrad(c *ctx) ([]*onnx.Value, error) { return []*onnx.Value{c.g.Neg(c.dy(0))}, nil }

// addGrad: da = ↓dy, db = ↓dy.
func addGrad(c *ctx) ([]*onnx.Value, error) {
	dy := c.dy(0)
	return c.binaryGrads(
		func() *onnx.Value { return c.sumTo(dy, c.in(0)) },
		func() *onnx.Value { return c.sumTo(dy, c.in(1)) }), nil
}

// subGrad: da = ↓dy, db = -↓dy.
func subGrad(c *ctx) ([]*onnx.Value, error) {
	dy := c.dy(0)
	return c.binaryGrads(
		func() *onnx.Value { return c.sumTo(dy, c.in(0)) },
		func() *onnx.Value { return c.g.Neg(c.sumTo(dy, c.in(1))) }), nil
}

// mulGrad: da = ↓(dy·b), db = ↓(dy·a).
func mulGrad(c *ctx) ([]*onnx.Value, error) {
	dy, a, b := c.dy(0), c.in(0), c.in(1)
	return c.binaryGrads(
		func() *onnx.Value { return c.sumTo(c.g.Mul(dy, b), a) },
		func() *onnx.Value { return c.sumTo(c.g.Mul(dy, a), b) }), nil
}

// divGrad: da = ↓(dy/b), db = -↓(dy·y/b).
func divGrad(c *ctx) ([]*onnx.Value, error) {
	dy, a, b, y := c.dy(0), c.in(0), c.in(1), c.out(0)
	return c.binaryGrads(
		func() *onnx.Value { return c.sumTo(c.g.Div(dy, b), a) },
		func() *onnx.Value { return c.g.Neg(c.sumTo(c.g.Div(c.g.Mul(dy, y), b), b)) }), nil
}

// powGrad: da = ↓(dy·b·a^(b-1)), db = ↓(dy·y·log a); a constant b is
// folded (b = 2: da = dy·2a, b = 0.5: da = dy·0.5/y).
func powGrad(c *ctx) ([]*onnx.Value, error) {
	dy, a, b, y := c.dy(0), c.in(0), c.in(1), c.out(0)
	dt := a.Type
	da := func() *onnx.Value {
		if e, ok := constScalar(b); ok {
			switch e {
			case 1:
				return c.sumTo(dy, a)
			case 2:
				return c.sumTo(c.g.Mul(dy, c.g.Mul(a, c.scalar(dt, 2))), a)
			case 0.5:
				return c.sumTo(c.g.Div(c.g.Mul(dy, c.scalar(dt, 0.5)), y), a)
			}
			return c.sumTo(c.g.Mul(dy, c.g.Mul(c.g.Pow(a, c.scalar(dt, e-1)), c.scalar(dt, e))), a)
		}
		bf := b
		if bf.Type != dt {
			bf = c.g.Cast(b, dt)
		}
		return c.sumTo(c.g.Mul(dy, c.g.Mul(bf, c.g.Pow(a, c.g.Sub(bf, c.scalar(dt, 1))))), a)
	}
	db := func() *onnx.Value { return c.sumTo(c.g.Mul(dy, c.g.Mul(y, c.g.Log(a))), b) }
	return c.binaryGrads(da, db), nil
}

// sqrtGrad: dx = dy·0.5/y.
func sqrtGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Div(c.g.Mul(c.dy(0), c.scalar(c.dt(), 0.5)), c.out(0))}, nil
}

// reciprocalGrad: dx = -dy·y².
func reciprocalGrad(c *ctx) ([]*onnx.Value, error) {
	y := c.out(0)
	return []*onnx.Value{c.g.Neg(c.g.Mul(c.dy(0), c.g.Mul(y, y)))}, nil
}

// expGrad: dx = dy·y.
func expGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Mul(c.dy(0), c.out(0))}, nil
}

// logGrad: dx = dy/x.
func logGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Div(c.dy(0), c.in(0))}, nil
}

// sigmoidGrad: dx = dy·y·(1-y).
func sigmoidGrad(c *ctx) ([]*onnx.Value, error) {
	y := c.out(0)
	return []*onnx.Value{c.g.Mul(c.dy(0), c.g.Mul(y, c.g.Sub(c.one(), y)))}, nil
}

// tanhGrad: dx = dy·(1-y²).
func tanhGrad(c *ctx) ([]*onnx.Value, error) {
	y := c.out(0)
	return []*onnx.Value{c.g.Mul(c.dy(0), c.g.Sub(c.one(), c.g.Mul(y, y)))}, nil
}

// absGrad: dx = dy·sign(x).
func absGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Mul(c.dy(0), c.g.Sign(c.in(0)))}, nil
}

// reluGrad: dx = y > 0 ? dy : 0.
func reluGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Where(c.g.Greater(c.out(0), c.zero()), c.dy(0), c.zero())}, nil
}

// whereGrad: dx = ↓(cond ? dy : 0), dy' = ↓(cond ? 0 : dy).
func whereGrad(c *ctx) ([]*onnx.Value, error) {
	dy, cond := c.dy(0), c.in(0)
	dx := make([]*onnx.Value, 3)
	if c.needs(1) {
		dx[1] = c.sumTo(c.g.Where(cond, dy, c.zero()), c.in(1))
	}
	if c.needs(2) {
		dx[2] = c.sumTo(c.g.Where(cond, c.zero(), dy), c.in(2))
	}
	return dx, nil
}

// maxGrad: da = ↓(a ≥ b ? dy : 0), db = ↓(a ≥ b ? 0 : dy); a tie goes to a.
func maxGrad(c *ctx) ([]*onnx.Value, error) { return c.minMax(c.g.GreaterOrEqual) }

// minGrad: da = ↓(a ≤ b ? dy : 0), db = ↓(a ≤ b ? 0 : dy); a tie goes to a.
func minGrad(c *ctx) ([]*onnx.Value, error) { return c.minMax(c.g.LessOrEqual) }

func (c *ctx) minMax(pick func(a, b *onnx.Value) *onnx.Value) ([]*onnx.Value, error) {
	dy := c.dy(0)
	switch len(c.n.Inputs) {
	case 1:
		return []*onnx.Value{dy}, nil
	case 2:
	default:
		return nil, fmt.Errorf("%d inputs: only 1 or 2 are supported", len(c.n.Inputs))
	}
	a, b := c.in(0), c.in(1)
	mask := pick(a, b)
	return c.binaryGrads(
		func() *onnx.Value { return c.sumTo(c.g.Where(mask, dy, c.zero()), a) },
		func() *onnx.Value { return c.sumTo(c.g.Where(mask, c.zero(), dy), b) }), nil
}

// clipGrad: dx = lo ≤ x ≤ hi ? dy : 0, dlo = Σ(x < lo ? dy : 0),
// dhi = Σ(x > hi ? dy : 0).
func clipGrad(c *ctx) ([]*onnx.Value, error) {
	dy, x, lo, hi := c.dy(0), c.in(0), c.in(1), c.in(2)
	dx := make([]*onnx.Value, len(c.n.Inputs))
	if c.needs(0) {
		var mask *onnx.Value
		if lo != nil {
			mask = c.g.GreaterOrEqual(x, lo)
		}
		if hi != nil {
			m := c.g.LessOrEqual(x, hi)
			if mask == nil {
				mask = m
			} else {
				mask = c.g.And(mask, m)
			}
		}
		if mask == nil {
			dx[0] = dy
		} else {
			dx[0] = c.g.Where(mask, dy, c.zero())
		}
	}
	bound := func(v, mask *onnx.Value) *onnx.Value {
		s := c.g.ReduceSum(c.g.Where(mask, dy, c.zero()), false)
		return c.g.ReshapeLike(s, c.shapeOf(v), v.Shape)
	}
	if c.needs(1) {
		dx[1] = bound(lo, c.g.Less(x, lo))
	}
	if c.needs(2) {
		dx[2] = bound(hi, c.g.Greater(x, hi))
	}
	return dx, nil
}

// sumGrad: dx_i = ↓dy.
func sumGrad(c *ctx) ([]*onnx.Value, error) {
	dy := c.dy(0)
	dx := make([]*onnx.Value, len(c.n.Inputs))
	for i, in := range c.n.Inputs {
		if c.needs(i) {
			dx[i] = c.sumTo(dy, in)
		}
	}
	return dx, nil
}

// softmaxGrad: dx = y·(dy - Σ_axis(dy·y)).
func softmaxGrad(c *ctx) ([]*onnx.Value, error) {
	dy, y := c.dy(0), c.out(0)
	axis := c.axis(-1, y.Rank())
	s := c.g.ReduceSum(c.g.Mul(dy, y), true, axis)
	return []*onnx.Value{c.g.Mul(y, c.g.Sub(dy, s))}, nil
}

// logSoftmaxGrad: dx = dy - exp(y)·Σ_axis dy. When dy is (partly) sparse from
// GatherElements along the same axis, the sparse part is scattered into
// -exp(y)·Σdy instead of being densified first.
func logSoftmaxGrad(c *ctx) ([]*onnx.Value, error) {
	y := c.out(0)
	axis := c.axis(-1, y.Rank())
	a := c.acc(y)
	fused := a.total == nil && len(a.sparse) > 0
	for _, s := range a.sparse {
		if s.nd || s.axis != axis || !sameExcept(s.indices.Shape, y.Shape, axis) {
			fused = false
		}
	}
	p := c.g.Exp(y)
	if !fused {
		dy := c.dy(0)
		return []*onnx.Value{c.g.Sub(dy, c.g.Mul(p, c.g.ReduceSum(dy, true, axis)))}, nil
	}
	var dense *onnx.Value
	switch len(a.dense) {
	case 0:
	case 1:
		dense = a.dense[0]
	default:
		dense = c.g.Sum(a.dense...)
	}
	var sums []*onnx.Value
	for _, s := range a.sparse {
		sums = append(sums, c.g.ReduceSum(s.updates, true, axis))
	}
	if dense != nil {
		sums = append(sums, c.g.ReduceSum(dense, true, axis))
	}
	total := sums[0]
	if len(sums) > 1 {
		total = c.g.Sum(sums...)
	}
	var dx *onnx.Value
	if dense == nil {
		dx = c.g.Mul(p, c.g.Neg(total))
	} else {
		dx = c.g.Sub(dense, c.g.Mul(p, total))
	}
	for _, s := range a.sparse {
		dx = c.g.ScatterElements(dx, s.indices, s.updates, axis, "add")
	}
	return []*onnx.Value{dx}, nil
}

// sameExcept reports whether two shapes of one rank provably agree on every
// axis but skip.
func sameExcept(a, b onnx.Shape, skip int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if i != skip && !a[i].Same(b[i]) {
			return false
		}
	}
	return true
}

// reduceAxes reads a reduction's axes (input 1 or the legacy attribute),
// normalised and sorted; all axes when none are given. noop reports a
// reduction that does nothing (empty axes with noop_with_empty_axes).
func (c *ctx) reduceAxes(rank int) (axes []int, noop bool, err error) {
	var ax []int64
	if v := c.in(1); v != nil {
		var ok bool
		if ax, ok = constInts(v); !ok {
			return nil, false, fmt.Errorf("axes %s are not a constant", v.Name)
		}
	} else if a, ok := c.attrInts("axes"); ok {
		ax = a
	}
	if len(ax) == 0 {
		if c.attrInt("noop_with_empty_axes", 0) != 0 {
			return nil, true, nil
		}
		for i := 0; i < rank; i++ {
			axes = append(axes, i)
		}
		return axes, false, nil
	}
	for _, a := range ax {
		if a < 0 {
			a += int64(rank)
		}
		axes = append(axes, int(a))
	}
	slices.Sort(axes)
	return axes, false, nil
}

// keptGrad returns dy with the reduced axes restored as size 1.
func (c *ctx) keptGrad(dy *onnx.Value, axes []int) *onnx.Value {
	if c.attrInt("keepdims", 1) != 0 {
		return dy
	}
	return c.g.Unsqueeze(dy, axes...)
}

// reduceSumGrad: dx = expand(dy).
func reduceSumGrad(c *ctx) ([]*onnx.Value, error) {
	x, dy := c.in(0), c.dy(0)
	axes, noop, err := c.reduceAxes(x.Rank())
	if err != nil || noop {
		return []*onnx.Value{dy}, err
	}
	return []*onnx.Value{c.expandTo(c.keptGrad(dy, axes), x, axes)}, nil
}

// reduceMeanGrad: dx = expand(dy / n), n the number of elements averaged.
func reduceMeanGrad(c *ctx) ([]*onnx.Value, error) {
	x, y, dy := c.in(0), c.out(0), c.dy(0)
	axes, noop, err := c.reduceAxes(x.Rank())
	if err != nil || noop {
		return []*onnx.Value{dy}, err
	}
	n := int64(1)
	for _, a := range axes {
		if !x.Shape[a].Known() {
			n = -1
			break
		}
		n *= x.Shape[a].Size
	}
	dyk := c.keptGrad(dy, axes)
	var scaled *onnx.Value
	if n > 0 {
		scaled = c.g.Mul(dyk, c.scalar(x.Type, 1/float64(n)))
	} else {
		cnt := c.g.Cast(c.g.Div(c.g.Size(x), c.g.Size(y)), x.Type)
		scaled = c.g.Div(dyk, cnt)
	}
	return []*onnx.Value{c.expandTo(scaled, x, axes)}, nil
}

// reduceMaxGrad: dx = (x == y)·dy / #ties.
func reduceMaxGrad(c *ctx) ([]*onnx.Value, error) {
	x, y, dy := c.in(0), c.out(0), c.dy(0)
	axes, noop, err := c.reduceAxes(x.Rank())
	if err != nil || noop {
		return []*onnx.Value{dy}, err
	}
	mask := c.g.Cast(c.g.Equal(x, c.keptGrad(y, axes)), x.Type)
	ties := c.g.ReduceSum(mask, true, axes...)
	return []*onnx.Value{c.g.Mul(mask, c.g.Div(c.keptGrad(dy, axes), ties))}, nil
}

// transposeLast swaps the last two axes.
func (c *ctx) transposeLast(x *onnx.Value) *onnx.Value {
	r := x.Rank()
	perm := make([]int, r)
	for i := range perm {
		perm[i] = i
	}
	perm[r-1], perm[r-2] = r-2, r-1
	return c.g.Transpose(x, perm...)
}

// flatten2 reshapes x to [-1, last dim].
func (c *ctx) flatten2(x *onnx.Value) *onnx.Value {
	r := x.Rank()
	last := x.Shape[r-1]
	lead := onnx.D(1)
	for _, d := range x.Shape[:r-1] {
		if !d.Known() {
			lead = onnx.Unknown
			break
		}
		lead.Size *= d.Size
	}
	var target *onnx.Value
	if last.Known() {
		target = c.g.Ints(-1, last.Size)
	} else {
		target = c.g.Concat(0, c.g.Ints(-1), c.dimOf(x, r-1))
	}
	return c.g.ReshapeLike(x, target, onnx.Shape{lead, last})
}

// matMulGrad: da = ↓(dy·bᵀ), db = ↓(aᵀ·dy). A 2-D b with batched a (a
// weight) gets db = flat(a)ᵀ·flat(dy), without a per-batch [.., K, N]. For
// the linear-layer pattern b = transpose(w) (HF [out, in] weights) it emits
// da = dy·w and records dw = flat(dy)ᵀ·flat(a) on w directly, so that no
// weight-sized gradient is transposed (ORT folds the remaining transposes
// of activations into FusedMatMul).
func matMulGrad(c *ctx) ([]*onnx.Value, error) {
	dy, a, b := c.dy(0), c.in(0), c.in(1)
	w := transposedWeight(b)
	if w != nil && (c.params[c.canonical(b)] || !c.onPath(w)) {
		w = nil
	}
	flat := func(x *onnx.Value) *onnx.Value {
		if x.Rank() == 2 {
			return x
		}
		return c.flatten2(x)
	}
	da := func() *onnx.Value {
		if w != nil {
			return c.sumTo(c.g.MatMul(dy, w), a)
		}
		return c.sumTo(c.g.MatMul(dy, c.transposeLast(b)), a)
	}
	db := func() *onnx.Value {
		switch {
		case w != nil:
			c.add(w, c.g.MatMul(c.transposeLast(flat(dy)), flat(a)))
			return handled
		case b.Rank() == 2:
			return c.g.MatMul(c.transposeLast(flat(a)), flat(dy))
		}
		return c.sumTo(c.g.MatMul(c.transposeLast(a), dy), b)
	}
	return c.binaryGrads(da, db), nil
}

// transposedWeight returns w when x = Transpose(w) swaps the axes of a 2-D w.
func transposedWeight(x *onnx.Value) *onnx.Value {
	n := x.Producer
	if n == nil || n.Op != "Transpose" || n.Domain != "" || x.Rank() != 2 {
		return nil
	}
	if p, ok := nodeInts(n, "perm"); ok && !(len(p) == 2 && p[0] == 1 && p[1] == 0) {
		return nil
	}
	return n.Inputs[0]
}

// reshapeGrad (Reshape, Squeeze, Unsqueeze, Flatten): dx = reshape(dy, shape(x)).
func reshapeGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.reshapeTo(c.dy(0), c.in(0))}, nil
}

// transposeGrad: dx = transpose(dy, perm⁻¹).
func transposeGrad(c *ctx) ([]*onnx.Value, error) {
	r := c.in(0).Rank()
	perm, ok := c.attrInts("perm")
	if !ok {
		perm = make([]int64, r)
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	inv := make([]int, r)
	for i, p := range perm {
		inv[p] = i
	}
	return []*onnx.Value{c.g.Transpose(c.dy(0), inv...)}, nil
}

// concatGrad: dx_i = split(dy, sizes)_i.
func concatGrad(c *ctx) ([]*onnx.Value, error) {
	dy := c.dy(0)
	axis := c.axis(0, dy.Rank())
	sizes := make([]int64, len(c.n.Inputs))
	shapes := make([]onnx.Shape, len(c.n.Inputs))
	static := true
	for i, in := range c.n.Inputs {
		shapes[i] = in.Shape
		if d := in.Shape[axis]; d.Known() {
			sizes[i] = d.Size
		} else {
			static = false
		}
	}
	var sv *onnx.Value
	if static {
		sv = c.g.Ints(sizes...)
	} else {
		parts := make([]*onnx.Value, len(c.n.Inputs))
		for i, in := range c.n.Inputs {
			parts[i] = c.dimOf(in, axis)
		}
		sv = c.g.Concat(0, parts...)
	}
	pieces := c.g.SplitBy(dy, sv, axis, shapes...)
	dx := make([]*onnx.Value, len(pieces))
	for i := range pieces {
		if c.needs(i) {
			dx[i] = pieces[i]
		}
	}
	return dx, nil
}

// splitGrad: dx = concat(dy_i), zeros for outputs without a gradient.
func splitGrad(c *ctx) ([]*onnx.Value, error) {
	x := c.in(0)
	axis := c.axis(0, x.Rank())
	parts := make([]*onnx.Value, len(c.n.Outputs))
	for i, o := range c.n.Outputs {
		if d := c.dy(i); d != nil {
			parts[i] = d
		} else {
			parts[i] = c.zeros(o)
		}
	}
	dx := make([]*onnx.Value, len(c.n.Inputs))
	dx[0] = c.g.Concat(axis, parts...)
	return dx, nil
}

// sliceGrad: dx = pad(dy) with zeros back to x's shape (unit steps only).
func sliceGrad(c *ctx) ([]*onnx.Value, error) {
	x, dy := c.in(0), c.dy(0)
	r := x.Rank()
	var axes, steps []int64
	if v := c.in(3); v != nil {
		var ok bool
		if axes, ok = constInts(v); !ok {
			return nil, fmt.Errorf("axes %s are not a constant", v.Name)
		}
	}
	if v := c.in(4); v != nil {
		var ok bool
		if steps, ok = constInts(v); !ok {
			return nil, fmt.Errorf("steps %s are not a constant", v.Name)
		}
		for _, s := range steps {
			if s != 1 {
				return nil, fmt.Errorf("steps %v: only unit steps have a gradient rule", steps)
			}
		}
	}
	starts, sok := constInts(c.in(1))
	ends, eok := constInts(c.in(2))
	n := len(starts)
	if !sok {
		n = int(c.in(1).Shape.NumElements())
		if n < 0 {
			return nil, fmt.Errorf("starts %s have an unknown length", c.in(1).Name)
		}
	}
	if axes == nil {
		for i := 0; i < n; i++ {
			axes = append(axes, int64(i))
		}
	}
	for i, a := range axes {
		if a < 0 {
			axes[i] = a + int64(r)
		}
	}
	// Static pads where starts, ends and the dims allow; else computed at
	// run time as [clamp(start), dim - max(clamp(end), clamp(start))].
	begin := make([]int64, n)
	end := make([]int64, n)
	static := sok && eok
	for i := 0; static && i < n; i++ {
		d := x.Shape[axes[i]]
		s, e := starts[i], ends[i]
		switch {
		case d.Known():
			cl := func(v int64) int64 {
				if v < 0 {
					v += d.Size
				}
				return max(0, min(v, d.Size))
			}
			begin[i] = cl(s)
			end[i] = d.Size - max(cl(e), cl(s))
		case s >= 0 && (e < 0 || e >= math.MaxInt32):
			begin[i] = s
			if e < 0 {
				end[i] = -e
			}
		default:
			static = false
		}
	}
	var pads *onnx.Value
	if static {
		pads = c.g.Ints(append(begin, end...)...)
	} else {
		bs := make([]*onnx.Value, n)
		es := make([]*onnx.Value, n)
		pick := func(v *onnx.Value, vals []int64, ok bool, i int) *onnx.Value {
			if ok {
				return c.g.Ints(vals[i])
			}
			p := c.g.Gather(v, c.g.Ints(int64(i)), 0)
			if p.Type != onnx.Int64 {
				p = c.g.Cast(p, onnx.Int64)
			}
			return p
		}
		zero := c.g.Ints(0)
		for i := 0; i < n; i++ {
			d := c.dimOf(x, int(axes[i]))
			clamp := func(v *onnx.Value) *onnx.Value {
				v = c.g.Where(c.g.Less(v, zero), c.g.Add(v, d), v)
				return c.g.Max(c.g.Min(v, d), zero)
			}
			s := clamp(pick(c.in(1), starts, sok, i))
			e := c.g.Max(clamp(pick(c.in(2), ends, eok, i)), s)
			bs[i] = s
			es[i] = c.g.Sub(d, e)
		}
		pads = c.g.Concat(0, append(bs, es...)...)
	}
	dx := make([]*onnx.Value, len(c.n.Inputs))
	dx[0] = c.g.Pad(dy, pads, c.g.Ints(axes...), x.Shape)
	return dx, nil
}

// expandGrad: dx = ↓dy.
func expandGrad(c *ctx) ([]*onnx.Value, error) {
	dx := make([]*onnx.Value, 2)
	dx[0] = c.sumTo(c.dy(0), c.in(0))
	return dx, nil
}

// tileGrad: dx = Σ_r reshape(dy, [r0, d0, r1, d1, ...]) over the r axes.
func tileGrad(c *ctx) ([]*onnx.Value, error) {
	x, dy := c.in(0), c.dy(0)
	reps, ok := constInts(c.in(1))
	if !ok {
		return nil, fmt.Errorf("repeats %s are not a constant", c.in(1).Name)
	}
	var shape onnx.Shape
	var parts []*onnx.Value
	var axes []int
	static := x.Shape.Known()
	var sizes []int64
	for i, d := range x.Shape {
		shape = append(shape, onnx.D(reps[i]), d)
		axes = append(axes, 2*i)
		sizes = append(sizes, reps[i], d.Size)
		parts = append(parts, c.g.Ints(reps[i]), c.dimOf(x, i))
	}
	var target *onnx.Value
	if static {
		target = c.g.Ints(sizes...)
	} else {
		target = c.g.Concat(0, parts...)
	}
	dx := make([]*onnx.Value, 2)
	dx[0] = c.g.ReduceSum(c.g.ReshapeLike(dy, target, shape), false, axes...)
	return dx, nil
}

// gatherGrad: dx = ScatterND-add(zeros(x), indices, dy) (emitted by
// scatterRows), recorded sparsely
// for axis 0 (the embedding), with axis moved to the front by transposes
// otherwise.
func gatherGrad(c *ctx) ([]*onnx.Value, error) {
	data, idx, dy := c.in(0), c.in(1), c.dy(0)
	r, q := data.Rank(), idx.Rank()
	axis := c.axis(0, r)
	if idx.Type != onnx.Int64 {
		idx = c.g.Cast(idx, onnx.Int64)
	}
	// Negative indices count from the end of the axis.
	var dim *onnx.Value
	if d := data.Shape[axis]; d.Known() {
		dim = c.scalar(onnx.Int64, float64(d.Size))
	} else {
		dim = c.g.Squeeze(c.dimOf(data, axis), 0)
	}
	idx = c.g.Where(c.g.Less(idx, c.scalar(onnx.Int64, 0)), c.g.Add(idx, dim), idx)
	idx = c.g.Unsqueeze(idx, -1)

	dx := make([]*onnx.Value, 2)
	if axis == 0 {
		// Sparse: scattered into the other contributions (the tied lm_head's)
		// or into zeros when the gradient is read.
		c.addSparse(data, sparseGrad{indices: idx, updates: dy, nd: true})
		dx[0] = handled
		return dx, nil
	}
	// data' = transpose(data, [axis, 0..axis-1, axis+1..]); gather(data', idx, 0)
	// is dy with the q index axes moved to the front.
	perm := []int{axis}
	for i := 0; i < r; i++ {
		if i != axis {
			perm = append(perm, i)
		}
	}
	var dyPerm []int
	for i := 0; i < q; i++ {
		dyPerm = append(dyPerm, axis+i)
	}
	for i := 0; i < axis; i++ {
		dyPerm = append(dyPerm, i)
	}
	for i := axis + q; i < dy.Rank(); i++ {
		dyPerm = append(dyPerm, i)
	}
	tShape := make(onnx.Shape, r)
	for i, p := range perm {
		tShape[i] = data.Shape[p]
	}
	var zeros *onnx.Value
	{
		fillT, err := fill(data.Type, []int64{1}, 0)
		if err != nil {
			return nil, err
		}
		perm64 := make([]int64, r)
		for i, p := range perm {
			perm64[i] = int64(p)
		}
		var shapeT *onnx.Value
		if tShape.Known() {
			shapeT = c.g.Ints(tShape.Sizes()...)
		} else {
			shapeT = c.g.Gather(c.shapeOf(data), c.g.Ints(perm64...), 0)
		}
		zeros = c.g.ConstantOfShape(shapeT, fillT, tShape)
	}
	acc := c.scatterRows(zeros, idx, c.g.Transpose(dy, dyPerm...))
	inv := make([]int, r)
	for i, p := range perm {
		inv[p] = i
	}
	dx[0] = c.g.Transpose(acc, inv...)
	return dx, nil
}

// gatherElementsGrad: dx = ScatterElements-add(zeros(x), indices, dy),
// recorded sparsely so that LogSoftmax can fuse it.
func gatherElementsGrad(c *ctx) ([]*onnx.Value, error) {
	data := c.in(0)
	c.addSparse(data, sparseGrad{indices: c.in(1), updates: c.dy(0), axis: c.axis(0, data.Rank())})
	return []*onnx.Value{handled, nil}, nil
}

// castGrad: dx = cast(dy, dtype(x)).
func castGrad(c *ctx) ([]*onnx.Value, error) {
	x, dy := c.in(0), c.dy(0)
	if x.Type == dy.Type {
		return []*onnx.Value{dy}, nil
	}
	return []*onnx.Value{c.g.Cast(dy, x.Type)}, nil
}

// triluGrad: dx = trilu(dy, k) with the same triangle.
func triluGrad(c *ctx) ([]*onnx.Value, error) {
	dx := make([]*onnx.Value, len(c.n.Inputs))
	dx[0] = c.g.Trilu(c.dy(0), c.in(1), c.attrInt("upper", 1) != 0)
	return dx, nil
}

// cumSumGrad: dx = cumsum(dy) in the opposite direction, same exclusivity.
func cumSumGrad(c *ctx) ([]*onnx.Value, error) {
	dy := c.dy(0)
	attrs := onnx.Attrs{"reverse": 1 - c.attrInt("reverse", 0)}
	if e := c.attrInt("exclusive", 0); e != 0 {
		attrs["exclusive"] = e
	}
	out := c.g.Node("CumSum", "", []*onnx.Value{dy, c.in(1)}, attrs, onnx.OutSpec{Type: dy.Type, Shape: dy.Shape})[0]
	return []*onnx.Value{out, nil}, nil
}

// unary emits a one-input, same-shape ONNX op.
func (c *ctx) unary(op string, x *onnx.Value) *onnx.Value {
	return c.g.Node(op, "", []*onnx.Value{x}, nil, onnx.OutSpec{Type: x.Type, Shape: x.Shape})[0]
}

// sinGrad: dx = dy·cos(x).
func sinGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Mul(c.dy(0), c.unary("Cos", c.in(0)))}, nil
}

// cosGrad: dx = -dy·sin(x).
func cosGrad(c *ctx) ([]*onnx.Value, error) {
	return []*onnx.Value{c.g.Neg(c.g.Mul(c.dy(0), c.unary("Sin", c.in(0))))}, nil
}

// simplifiedLayerNormGrad (ORT's RMS norm y = x·r·scale, r = 1/sqrt(mean(x²)+ε)
// over the axes from axis): dx = r·(g - x·r²·mean(g·x)) with g = dy·scale,
// dscale = ↓(dy·x·r). r is recomputed (the forward node does not output it).
func simplifiedLayerNormGrad(c *ctx) ([]*onnx.Value, error) {
	x, scale, dy := c.in(0), c.in(1), c.dy(0)
	for _, o := range c.n.Outputs[1:] {
		if c.acc(o) != nil {
			return nil, fmt.Errorf("gradient through the inv_std_var output is not supported")
		}
	}
	var axes []int
	for a := c.axis(-1, x.Rank()); a < x.Rank(); a++ {
		axes = append(axes, a)
	}
	eps := 1e-5
	switch e := c.n.Attrs["epsilon"].(type) {
	case float32:
		eps = float64(e)
	case float64:
		eps = e
	}
	dt := x.Type
	r := c.g.Reciprocal(c.g.Sqrt(c.g.Add(c.g.ReduceMean(c.g.Mul(x, x), true, axes...), c.scalar(dt, eps))))
	dx := make([]*onnx.Value, 2)
	if c.needs(0) {
		gs := c.g.Mul(dy, scale)
		m := c.g.ReduceMean(c.g.Mul(gs, x), true, axes...)
		dx[0] = c.g.Mul(r, c.g.Sub(gs, c.g.Mul(x, c.g.Mul(c.g.Mul(r, r), m))))
	}
	if c.needs(1) {
		dx[1] = c.sumTo(c.g.Mul(dy, c.g.Mul(x, r)), scale)
	}
	return dx, nil
}
