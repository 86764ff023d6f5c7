// Package grad is reverse-mode automatic differentiation over the onnx IR.
//
// Backward appends the backward pass of a loss to the graph that computes it,
// made only of standard ONNX operators, so that any stock ONNX Runtime build
// (CPU or CUDA, no training kernels) runs the result. Like ONNX Runtime's own
// gradient builder it has one rule per operator (rules.go); each rule turns
// the gradients of a node's outputs into gradients of its inputs.
//
// # Which values get gradients
//
// A value needs a gradient when it lies on a path from a parameter to the
// loss, and the path carries floating-point values through differentiable
// operators. Integer and bool values never carry gradients; operators whose
// gradient is zero or undefined (Shape, Size, comparisons, logic, Sign,
// Floor/Ceil/Round, ArgMax, Range, ConstantOfShape, ...) stop the path
// explicitly. Everything else is pruned: nodes off the path emit nothing.
// An operator without a rule on the path is a build-time error that names
// the operator and the node.
//
// # Broadcasting
//
// Gradients of broadcasting operators (Add, Sub, Mul, Div, Pow, Where,
// Min/Max, Sum, Expand, MatMul's batch axes) are summed back to the input's
// shape using the static shapes recorded in the IR: an input axis counts as
// broadcast when the input has lower rank than the output (the leading
// axes), or when its dim is the known size 1 and the output's dim is not the
// known size 1. An input dim that is symbolic or unknown is assumed equal to
// the output's dim; a graph that relies on a symbolic dim being 1 at run
// time to broadcast gets wrong gradients, so record such dims as 1.
//
// # Fan-in, sparse gradients and fused rules
//
// Gradients that reach one value along several paths are summed in one Sum
// node. Two gathers record their gradients sparsely, as the (indices,
// updates) of a scatter-add, and a value's sparse gradients are scattered
// into its summed dense gradient (or into zeros) only when it is read:
//   - GatherElements (the per-token log-prob pick from a [B,T,V]
//     log-softmax) as a ScatterElements-add. LogSoftmax fuses it:
//     dx = dy - exp(y)·Σdy becomes ScatterElements-add(-exp(y)·Σupdates,
//     indices, updates), which never builds the dense one-hot gradient.
//   - Gather on axis 0 (the embedding lookup) as a ScatterND-add (emitted
//     as a ScatterElements-add, see scatterRows), which a tied lm_head's
//     dense gradient absorbs without zeros or a Sum.
//
// MatMul by transpose(w) of a 2-D w (a linear layer with HF [out, in]
// weights) records dw = flat(dy)ᵀ·flat(x) on w itself, so that no
// weight-sized gradient is transposed; a 2-D weight times batched
// activations is differentiated as one [K,N] product, never per batch.
// Rules reuse forward outputs where the formula allows (Softmax, LogSoftmax,
// Exp, Sigmoid, Tanh, Sqrt, Reciprocal, Div, Relu) instead of recomputing
// them.
package grad

import (
	"fmt"
	"math"

	"github.com/igsearch/igsearch/onnx"
)

// minOpset is the oldest ONNX opset whose operators the rules emit.
const minOpset = 18

// Options tune Backward. The zero value seeds a one-element loss with 1 and
// gives parameters that do not reach the loss a zeros gradient.
type Options struct {
	// Seed is dL/dloss: a value of the loss's dtype and shape, for example a
	// graph input or a loss-scale constant. When nil, the loss must have
	// exactly one element (a scalar, or all dims the known size 1) and is
	// seeded with 1.
	Seed *onnx.Value
	// RequireReach makes a parameter that does not reach the loss an error.
	// By default such a parameter gets an explicit zeros gradient of its own
	// shape, so that callers (an optimiser over all weights, frozen paths,
	// LoRA) can treat every parameter alike.
	RequireReach bool
	// Recompute lists stretches of the forward pass whose intermediate
	// values the backward pass recomputes instead of keeping (gradient
	// checkpointing, recompute.go), e.g. one segment per decoder layer.
	// Gradients are the same values; the forward activations of a segment
	// are dead once the forward has used them.
	Recompute []Segment
}

// Backward appends to g the backward pass of loss with respect to params and
// returns one gradient value per parameter, in the order of params, each of
// the parameter's dtype and shape. Parameters are usually graph inputs or
// initializers, but any floating-point value of g is allowed (the gradient is
// then the total derivative at that value). The returned values are not graph
// outputs; mark them with g.Output. A returned value may be shared between
// parameters or be the seed itself (for example when the loss is a
// parameter).
//
// Backward differentiates the nodes that are in g when it is called. It is
// not safe to call concurrently on one graph; calling it twice on one graph
// appends two independent backward passes.
func Backward(g *onnx.Graph, loss *onnx.Value, params []*onnx.Value, opts Options) (grads []*onnx.Value, err error) {
	if err := checkBackward(g, loss, params); err != nil {
		return nil, err
	}
	b := &builder{
		g:      g,
		params: map[*onnx.Value]bool{},
		grads:  map[*onnx.Value]*accum{},
		shapes: map[*onnx.Value]*onnx.Value{},
		consts: map[constKey]*onnx.Value{},
		canon:  map[*onnx.Value]*onnx.Value{},
	}
	defer func() {
		// The onnx helpers panic on misuse; a rule that trips one is a bug
		// in the rule or a malformed graph, reported here with its node.
		if r := recover(); r != nil {
			if b.node != nil {
				err = fmt.Errorf("grad: node %s (%s): %v", b.node.Name, b.node.Op, r)
			} else {
				err = fmt.Errorf("grad: %v", r)
			}
			grads = nil
		}
	}()

	seed, err := b.seed(loss, opts.Seed)
	if err != nil {
		return nil, err
	}

	nodes := g.Nodes[:len(g.Nodes):len(g.Nodes)]
	requires, reaches := requiresGrad(nodes, params), upstream(nodes, loss)
	onPath := func(v *onnx.Value) bool {
		v = b.canonical(v)
		return v != nil && requires[v] && reaches[v]
	}
	b.onPath = onPath
	for _, p := range params {
		b.params[p] = true
	}
	segOf, err := b.segments(nodes, opts.Recompute)
	if err != nil {
		return nil, err
	}

	if onPath(loss) {
		b.add(loss, seed)
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		active := false
		for _, o := range n.Outputs {
			if onPath(o) {
				active = true
				break
			}
		}
		if !active {
			continue
		}
		if k, ok := segOf[n]; ok {
			n = b.recomputed(k, n)
		}
		b.node = n
		if err := b.backNode(n, onPath); err != nil {
			return nil, err
		}
		b.node = nil
	}

	grads = make([]*onnx.Value, len(params))
	for i, p := range params {
		d := b.total(p)
		if d == nil {
			if opts.RequireReach {
				return nil, fmt.Errorf("grad: parameter %s does not reach loss %s", p.Name, loss.Name)
			}
			d = b.zeros(p)
		}
		grads[i] = d
	}
	b.pruneRecomputed(grads)
	return grads, nil
}

// checkBackward checks Backward's arguments.
func checkBackward(g *onnx.Graph, loss *onnx.Value, params []*onnx.Value) error {
	if loss == nil {
		return fmt.Errorf("grad: nil loss")
	}
	if !loss.Type.IsFloat() {
		return fmt.Errorf("grad: loss %v is not floating point", loss)
	}
	for i, p := range params {
		if p == nil {
			return fmt.Errorf("grad: parameter %d is nil", i)
		}
		if !p.Type.IsFloat() {
			return fmt.Errorf("grad: parameter %v is not floating point", p)
		}
	}
	if v := g.Opsets[""]; v != 0 && v < minOpset {
		return fmt.Errorf("grad: graph %s is at ONNX opset %d; backward passes need opset %d or later (axes as inputs, scatter reductions, Pad axes)", g.Name, v, minOpset)
	}
	return nil
}

// requiresGrad marks, walking forward, the values that depend on a
// parameter through differentiable ops.
func requiresGrad(nodes []*onnx.Node, params []*onnx.Value) map[*onnx.Value]bool {
	requires := map[*onnx.Value]bool{}
	for _, p := range params {
		requires[p] = true
	}
	for _, n := range nodes {
		if nonDifferentiable[n.Op] && n.Domain == "" {
			continue
		}
		dep := false
		for _, in := range n.Inputs {
			if in != nil && requires[in] {
				dep = true
				break
			}
		}
		if !dep {
			continue
		}
		for _, o := range n.Outputs {
			if o.Type.IsFloat() {
				requires[o] = true
			}
		}
	}
	return requires
}

// upstream marks, walking backward, v and the values it depends on (a
// node's outputs are final when it is reached, since its consumers come
// after it).
func upstream(nodes []*onnx.Node, v *onnx.Value) map[*onnx.Value]bool {
	reaches := map[*onnx.Value]bool{v: true}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		hit := false
		for _, o := range n.Outputs {
			if reaches[o] {
				hit = true
				break
			}
		}
		if !hit {
			continue
		}
		for _, in := range n.Inputs {
			if in != nil {
				reaches[in] = true
			}
		}
	}
	return reaches
}

// backNode runs the rule of one node on the path and records the input
// gradients it returns.
func (b *builder) backNode(n *onnx.Node, onPath func(*onnx.Value) bool) error {
	r, ok := rules[n.Op]
	if !ok || n.Domain != "" {
		op := n.Op
		if n.Domain != "" {
			op = n.Domain + "." + op
		}
		return fmt.Errorf("grad: node %s: no gradient rule for op %s (it lies on the path from a parameter to the loss)", n.Name, op)
	}
	c := &ctx{builder: b, n: n, need: make([]bool, len(n.Inputs))}
	needAny := false
	for i, in := range n.Inputs {
		c.need[i] = onPath(in)
		needAny = needAny || c.need[i]
	}
	if !needAny {
		return nil
	}
	hasDy := false
	for _, o := range n.Outputs {
		if a := b.acc(o); a != nil {
			hasDy = true
		}
	}
	if !hasDy {
		return nil
	}
	dxs, err := r(c)
	if err != nil {
		return fmt.Errorf("grad: node %s (%s): %w", n.Name, n.Op, err)
	}
	for i, in := range n.Inputs {
		if !c.need[i] {
			continue
		}
		var dx *onnx.Value
		if i < len(dxs) {
			dx = dxs[i]
		}
		switch {
		case dx == handled:
			continue
		case dx == nil:
			return fmt.Errorf("grad: node %s (%s): no gradient for input %d (%s)", n.Name, n.Op, i, in.Name)
		}
		if err := checkLike(dx, in); err != nil {
			return fmt.Errorf("grad: node %s (%s): gradient of input %d: %w", n.Name, n.Op, i, err)
		}
		b.add(in, dx)
	}
	return nil
}

// checkLike verifies that a gradient matches its value's dtype and static
// shape (a rule bug otherwise).
func checkLike(dx, x *onnx.Value) error {
	if dx.Type != x.Type {
		return fmt.Errorf("dtype %s, want %s", dx.Type, x.Type)
	}
	if dx.Rank() != x.Rank() {
		return fmt.Errorf("shape %v, want %v", dx.Shape, x.Shape)
	}
	for i := range x.Shape {
		if dx.Shape[i].Known() && x.Shape[i].Known() && dx.Shape[i].Size != x.Shape[i].Size {
			return fmt.Errorf("shape %v, want %v", dx.Shape, x.Shape)
		}
	}
	return nil
}

// nonDifferentiable lists the float-producing (or float-consuming) ONNX ops
// whose outputs carry no gradient: their derivative is zero almost everywhere
// or they produce indices, shapes or masks. Ops whose outputs are all
// non-float are non-differentiable without being listed.
var nonDifferentiable = map[string]bool{
	"Shape": true, "Size": true,
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true,
	"And": true, "Or": true, "Not": true, "Xor": true,
	"IsNaN": true, "IsInf": true,
	"Sign": true, "Floor": true, "Ceil": true, "Round": true,
	"ArgMax": true, "ArgMin": true, "NonZero": true,
	"Range": true, "ConstantOfShape": true, "Constant": true, "EyeLike": true, "OneHot": true,
	"RandomNormal": true, "RandomUniform": true, "RandomNormalLike": true, "RandomUniformLike": true,
	"Multinomial": true, "Bernoulli": true,
}

// handled is returned by a rule for an input whose gradient it recorded
// itself (sparsely).
var handled = &onnx.Value{Name: "<handled>"}

// builder holds the state of one Backward call.
type builder struct {
	g      *onnx.Graph
	params map[*onnx.Value]bool   // the requested parameters
	onPath func(*onnx.Value) bool // v needs a gradient
	grads  map[*onnx.Value]*accum
	shapes map[*onnx.Value]*onnx.Value
	consts map[constKey]*onnx.Value
	node   *onnx.Node // the node whose rule runs, for panics
	// canon maps a recomputed value to the forward value it stands for:
	// gradients are keyed by the forward value (recompute.go).
	canon map[*onnx.Value]*onnx.Value
	// segs are the Options.Recompute segments; recompute holds, per
	// segment, the forward → recomputed value map once it is emitted.
	segs      []segment
	recompute []map[*onnx.Value]*onnx.Value
	// emitted are the g.Nodes index ranges of recomputation nodes, pruned
	// at the end when nothing reads them.
	emitted [][2]int
}

// canonical is the forward value that v stands for: v itself unless v is a
// recomputed copy.
func (b *builder) canonical(v *onnx.Value) *onnx.Value {
	if c, ok := b.canon[v]; ok {
		return c
	}
	return v
}

// acc is the gradient accumulator of v (or of the forward value that a
// recomputed v stands for), nil when nothing reached it yet.
func (b *builder) acc(v *onnx.Value) *accum { return b.grads[b.canonical(v)] }

// accum collects the gradient contributions of one value.
type accum struct {
	dense  []*onnx.Value
	sparse []sparseGrad
	total  *onnx.Value
}

// sparseGrad is a gradient that is zero except at indices: with nd false,
// ScatterElements-add(zeros, indices, updates, axis) (from GatherElements);
// with nd true, ScatterND-add(zeros, indices, updates) (from an axis-0 Gather,
// indices with a trailing axis of 1).
type sparseGrad struct {
	indices, updates *onnx.Value
	axis             int
	nd               bool
}

// scatter adds s into base.
func (b *builder) scatter(base *onnx.Value, s sparseGrad) *onnx.Value {
	if s.nd {
		return b.scatterRows(base, s.indices, s.updates)
	}
	return b.g.ScatterElements(base, s.indices, s.updates, s.axis, "add")
}

// scatterRows is ScatterND-add(base, idx, upd) for idx [..., 1]: it adds
// each row of upd into the row of base that idx names. It is emitted as a
// ScatterElements-add on [rows, slice] views instead, because ONNX Runtime's
// CPU ScatterND splits the updates across intra-op threads without guarding
// repeated indices: with two threads, an embedding gradient over repeated
// token ids loses updates, differently on every run. ScatterElements adds
// sequentially.
func (b *builder) scatterRows(base, idx, upd *onnx.Value) *onnx.Value {
	flat := b.g.Reshape(base, 0, -1)
	slice := b.dimOf(flat, 1)
	rows := b.g.ReshapeLike(upd, b.g.Concat(0, b.g.Ints(-1), slice), onnx.Shape{onnx.Unknown, flat.Shape[1]})
	at := b.g.Expand(b.g.Reshape(idx, -1, 1), b.g.Shape(rows), rows.Shape)
	return b.reshapeTo(b.g.ScatterElements(flat, at, rows, 0, "add"), base)
}

type constKey struct {
	dt onnx.DType
	x  float64
}

func (b *builder) add(v, dx *onnx.Value) {
	v = b.canonical(v)
	a := b.grads[v]
	if a == nil {
		a = &accum{}
		b.grads[v] = a
	}
	if a.total != nil {
		panic(fmt.Sprintf("gradient of %s added after it was read", v.Name))
	}
	a.dense = append(a.dense, dx)
}

func (b *builder) addSparse(v *onnx.Value, s sparseGrad) {
	v = b.canonical(v)
	a := b.grads[v]
	if a == nil {
		a = &accum{}
		b.grads[v] = a
	}
	if a.total != nil {
		panic(fmt.Sprintf("gradient of %s added after it was read", v.Name))
	}
	a.sparse = append(a.sparse, s)
}

// total is the summed, dense gradient of v, or nil if nothing reached it.
func (b *builder) total(v *onnx.Value) *onnx.Value {
	a := b.acc(v)
	if a == nil {
		return nil
	}
	if a.total != nil {
		return a.total
	}
	var t *onnx.Value
	switch len(a.dense) {
	case 0:
	case 1:
		t = a.dense[0]
	default:
		t = b.g.Sum(a.dense...)
	}
	for _, s := range a.sparse {
		base := t
		if base == nil {
			base = b.zeros(v)
		}
		t = b.scatter(base, s)
	}
	a.total = t
	return t
}

// seed is the initial gradient of the loss.
func (b *builder) seed(loss, seed *onnx.Value) (*onnx.Value, error) {
	if seed != nil {
		if seed.Type != loss.Type {
			return nil, fmt.Errorf("grad: seed %v: dtype differs from loss %v", seed, loss)
		}
		if err := checkLike(seed, loss); err != nil {
			return nil, fmt.Errorf("grad: seed %v for loss %v: %w", seed, loss, err)
		}
		return seed, nil
	}
	if loss.Shape.NumElements() != 1 {
		return nil, fmt.Errorf("grad: loss %v has more than one element (or an unknown shape); pass Options.Seed", loss)
	}
	t, err := fill(loss.Type, loss.Shape.Sizes(), 1)
	if err != nil {
		return nil, fmt.Errorf("grad: seed for loss %v: %w", loss, err)
	}
	return b.g.Const(t), nil
}

// fill is a constant tensor of one element with the given dims (all 1).
func fill(dt onnx.DType, dims []int64, x float64) (*onnx.Tensor, error) {
	var t *onnx.Tensor
	switch dt {
	case onnx.Float, onnx.Double, onnx.Float16, onnx.Int64:
		t = onnx.ScalarTensor(dt, x)
	case onnx.BFloat16:
		bits := math.Float32bits(float32(x))
		bits += 0x7fff + (bits>>16)&1 // round to nearest even
		t = &onnx.Tensor{DType: onnx.BFloat16, Raw: []byte{byte(bits >> 16), byte(bits >> 24)}}
	default:
		return nil, fmt.Errorf("no constants of dtype %s", dt)
	}
	t.Dims = append([]int64{}, dims...)
	return t, nil
}

// scalar is a cached rank-0 constant of dtype dt.
func (b *builder) scalar(dt onnx.DType, x float64) *onnx.Value {
	k := constKey{dt, x}
	if v := b.consts[k]; v != nil {
		return v
	}
	t, err := fill(dt, nil, x)
	if err != nil {
		panic(err)
	}
	v := b.g.Const(t)
	b.consts[k] = v
	return v
}

// shapeOf is the shape of x as an int64 vector: a constant when it is fully
// known, else one (cached) Shape node.
func (b *builder) shapeOf(x *onnx.Value) *onnx.Value {
	if x.Shape.Known() {
		return b.g.Ints(x.Shape.Sizes()...)
	}
	if s := b.shapes[x]; s != nil {
		return s
	}
	s := b.g.Shape(x)
	b.shapes[x] = s
	return s
}

// dimOf is dim axis of x as an int64 vector of length 1.
func (b *builder) dimOf(x *onnx.Value, axis int) *onnx.Value {
	if d := x.Shape[axis]; d.Known() {
		return b.g.Ints(d.Size)
	}
	return b.g.Gather(b.shapeOf(x), b.g.Ints(int64(axis)), 0)
}

// zeros is a zero tensor of x's dtype and shape.
func (b *builder) zeros(x *onnx.Value) *onnx.Value {
	t, err := fill(x.Type, []int64{1}, 0)
	if err != nil {
		panic(err)
	}
	return b.g.ConstantOfShape(b.shapeOf(x), t, x.Shape)
}

// reshapeTo reshapes dy to x's (runtime) shape. It avoids a Shape node on x
// (which would keep the forward value alive until the backward pass) when
// x's dims are known, provably equal to dy's at the same index (ONNX's 0), or
// all but one of them are (-1).
func (b *builder) reshapeTo(dy, x *onnx.Value) *onnx.Value {
	target := make([]int64, x.Rank())
	infer := false
	for i, d := range x.Shape {
		switch {
		case d.Known() && d.Size > 0:
			target[i] = d.Size
		case !d.Known() && i < dy.Rank() && dy.Shape[i].Same(d):
			target[i] = 0
		case !d.Known() && !infer:
			target[i], infer = -1, true
		default:
			return b.g.ReshapeLike(dy, b.shapeOf(x), x.Shape)
		}
	}
	return b.g.ReshapeLike(dy, b.g.Ints(target...), x.Shape)
}

// expandTo broadcasts dy, which has x's rank with size 1 on the reduced axes,
// back to x's shape. The target is 1 on the other axes (Expand keeps dy's
// dim there), so only reduced axes of unknown size need x's runtime shape.
func (b *builder) expandTo(dy, x *onnx.Value, axes []int) *onnx.Value {
	target := make([]int64, x.Rank())
	for i := range target {
		target[i] = 1
	}
	for _, a := range axes {
		if !x.Shape[a].Known() {
			return b.g.Expand(dy, b.shapeOf(x), x.Shape)
		}
		target[a] = x.Shape[a].Size
	}
	return b.g.Expand(dy, b.g.Ints(target...), x.Shape)
}

// sumTo reduces a gradient of a broadcast result to the shape of the input
// x, by the static broadcast rule in the package comment.
func (b *builder) sumTo(dy, x *onnx.Value) *onnx.Value {
	lead := dy.Rank() - x.Rank()
	if lead < 0 {
		panic(fmt.Sprintf("gradient %v has lower rank than input %v", dy, x))
	}
	var axes []int
	for i := 0; i < lead; i++ {
		axes = append(axes, i)
	}
	for i, xd := range x.Shape {
		yd := dy.Shape[lead+i]
		if xd.Known() && xd.Size == 1 && !(yd.Known() && yd.Size == 1) {
			axes = append(axes, lead+i)
		}
	}
	if len(axes) == 0 {
		return dy
	}
	s := b.g.ReduceSum(dy, true, axes...)
	if lead > 0 {
		s = b.g.Squeeze(s, axes[:lead]...)
	}
	return s
}
