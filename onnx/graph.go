// Package onnx is the project's ONNX IR: a small typed graph builder (values
// with a dtype and a symbolic shape, nodes, initializers) that serialises to an
// ONNX ModelProto. The model builders (models/), the autodiff (onnx/grad) and
// the training artifacts (trainer/) all build graphs with it; onnx/ort runs them.
//
// Every value has a known rank. Dimensions are known sizes or named symbols
// ("batch", "seq"); typed op helpers (ops.go) infer output shapes so that the
// autodiff can tell which axes were broadcast.
package onnx

import (
	"fmt"
	"strings"
)

// DType is an ONNX tensor element type; the values are TensorProto.DataType's.
type DType int32

// The element types the project uses.
const (
	Undefined DType = 0
	Float     DType = 1
	Uint8     DType = 2
	Int8      DType = 3
	Int32     DType = 6
	Int64     DType = 7
	Bool      DType = 9
	Float16   DType = 10
	Double    DType = 11
	BFloat16  DType = 16
)

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Float16, BFloat16:
		return 2
	case Float, Int32:
		return 4
	case Int64, Double:
		return 8
	}
	return 0
}

// IsFloat reports whether d is a floating-point type (it carries gradients).
func (d DType) IsFloat() bool {
	return d == Float || d == Double || d == Float16 || d == BFloat16
}

func (d DType) String() string {
	switch d {
	case Float:
		return "float32"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	case Float16:
		return "float16"
	case Double:
		return "float64"
	case BFloat16:
		return "bfloat16"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Dim is one dimension: a known size (Size ≥ 0), a named symbol (Param set,
// Size -1), or unknown (Size -1, no Param).
type Dim struct {
	Size  int64
	Param string
}

// D is a known dimension.
func D(n int64) Dim { return Dim{Size: n} }

// Sym is a symbolic dimension such as "batch".
func Sym(name string) Dim { return Dim{Size: -1, Param: name} }

// Unknown is a dimension nothing is known about.
var Unknown = Dim{Size: -1}

// Known reports whether the size is a fixed number.
func (d Dim) Known() bool { return d.Size >= 0 }

// Same reports whether two dims are provably equal: the same size, or the same
// symbol.
func (d Dim) Same(e Dim) bool {
	if d.Known() || e.Known() {
		return d.Size == e.Size
	}
	return d.Param != "" && d.Param == e.Param
}

func (d Dim) String() string {
	switch {
	case d.Known():
		return fmt.Sprint(d.Size)
	case d.Param != "":
		return d.Param
	}
	return "?"
}

// Shape is a value's shape; its length is the rank.
type Shape []Dim

// Dims makes a fully known shape.
func Dims(sizes ...int64) Shape {
	s := make(Shape, len(sizes))
	for i, n := range sizes {
		s[i] = D(n)
	}
	return s
}

// Known reports whether every dimension is a fixed size.
func (s Shape) Known() bool {
	for _, d := range s {
		if !d.Known() {
			return false
		}
	}
	return true
}

// Sizes returns the sizes, -1 for non-fixed dims.
func (s Shape) Sizes() []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = d.Size
	}
	return out
}

// NumElements is the product of the sizes, or -1 if any is not fixed.
func (s Shape) NumElements() int64 {
	n := int64(1)
	for _, d := range s {
		if !d.Known() {
			return -1
		}
		n *= d.Size
	}
	return n
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Value is a tensor flowing through a graph: a graph input, an initializer, or
// a node output.
type Value struct {
	Name     string
	Type     DType
	Shape    Shape
	Producer *Node   // nil for graph inputs and initializers
	Init     *Tensor // the data, for initializers

	// noShape marks a value read from a file that declares no shape (rank
	// unknown); values built in Go always have a known rank.
	noShape bool
}

// RankKnown reports whether the value's rank is known: always for values
// built in Go, and for loaded values whose file declares a shape.
func (v *Value) RankKnown() bool { return !v.noShape }

func (v *Value) String() string { return fmt.Sprintf("%s:%s%s", v.Name, v.Type, v.Shape) }

// Rank is the number of dimensions.
func (v *Value) Rank() int { return len(v.Shape) }

// Attrs are a node's attributes. Values are int64, float32, string, []int64,
// []float32, []string or *Tensor; other Go integer and float types are
// converted when the graph is serialised.
type Attrs map[string]any

// Node is one operator application.
type Node struct {
	Op      string
	Domain  string // "" for the default ONNX domain, "com.microsoft" for contrib ops
	Name    string
	Inputs  []*Value // a nil entry is an omitted optional input
	Outputs []*Value
	Attrs   Attrs
}

// Graph is an ONNX graph under construction. It is not safe for concurrent use.
type Graph struct {
	Name         string
	Inputs       []*Value
	Outputs      []*Value
	Initializers []*Value
	Nodes        []*Node
	// Opsets maps an operator domain to its version; "" is the ONNX domain.
	Opsets map[string]int64
	// Doc is stored as the graph's doc_string.
	Doc string
	// ValueInfo optionally records the types of intermediate values (the
	// graph's value_info); Load fills it from the file, builders may leave it
	// empty.
	ValueInfo []*Value

	names map[string]bool
	seq   int
}

// DefaultOpset is the ONNX opset the builders target.
const DefaultOpset = 21

// MicrosoftDomain is ONNX Runtime's contrib-op domain.
const MicrosoftDomain = "com.microsoft"

// NewGraph starts an empty graph at DefaultOpset.
func NewGraph(name string) *Graph {
	return &Graph{Name: name, Opsets: map[string]int64{"": DefaultOpset}, names: map[string]bool{}}
}

// uniqueName returns base, or base_N if base is taken, and reserves it.
func (g *Graph) uniqueName(base string) string {
	if g.names == nil {
		g.names = map[string]bool{}
	}
	name := base
	for g.names[name] {
		g.seq++
		name = fmt.Sprintf("%s_%d", base, g.seq)
	}
	g.names[name] = true
	return name
}

// Input declares a graph input. The name is used as given and must be unique.
func (g *Graph) Input(name string, dt DType, shape ...Dim) *Value {
	if g.names[name] {
		panic(fmt.Sprintf("onnx: graph %s: duplicate value name %q", g.Name, name))
	}
	g.names[name] = true
	v := &Value{Name: name, Type: dt, Shape: Shape(shape)}
	g.Inputs = append(g.Inputs, v)
	return v
}

// Initializer adds a named constant tensor (a weight). The name is used as
// given and must be unique.
func (g *Graph) Initializer(name string, t *Tensor) *Value {
	if g.names[name] {
		panic(fmt.Sprintf("onnx: graph %s: duplicate value name %q", g.Name, name))
	}
	g.names[name] = true
	v := &Value{Name: name, Type: t.DType, Shape: Dims(t.Dims...), Init: t}
	g.Initializers = append(g.Initializers, v)
	return v
}

// Const adds an anonymous constant.
func (g *Graph) Const(t *Tensor) *Value {
	name := g.uniqueName("const")
	v := &Value{Name: name, Type: t.DType, Shape: Dims(t.Dims...), Init: t}
	g.Initializers = append(g.Initializers, v)
	return v
}

// Output marks v as a graph output named name. If v already carries another
// name or is a graph input or initializer, an Identity node gives it the name.
func (g *Graph) Output(name string, v *Value) *Value {
	if v.Name != name || v.Producer == nil {
		out := g.newValue(name, v.Type, v.Shape)
		if out.Name != name {
			panic(fmt.Sprintf("onnx: graph %s: output name %q is taken", g.Name, name))
		}
		g.Nodes = append(g.Nodes, &Node{Op: "Identity", Name: g.uniqueName("Identity"), Inputs: []*Value{v}, Outputs: []*Value{out}})
		out.Producer = g.Nodes[len(g.Nodes)-1]
		v = out
	}
	g.Outputs = append(g.Outputs, v)
	return v
}

func (g *Graph) newValue(base string, dt DType, shape Shape) *Value {
	return &Value{Name: g.uniqueName(base), Type: dt, Shape: append(Shape(nil), shape...)}
}

// OutSpec gives the type and shape of one output of a generic node.
type OutSpec struct {
	Type  DType
	Shape Shape
}

// Node appends an operator with explicitly typed outputs; the typed helpers in
// ops.go call it after inferring shapes. Output names derive from the op.
func (g *Graph) Node(op, domain string, inputs []*Value, attrs Attrs, outs ...OutSpec) []*Value {
	if domain != "" {
		if _, ok := g.Opsets[domain]; !ok {
			g.Opsets[domain] = 1
		}
	}
	n := &Node{Op: op, Domain: domain, Name: g.uniqueName(op), Inputs: inputs, Attrs: attrs}
	for _, o := range outs {
		v := g.newValue(strings.ToLower(op), o.Type, o.Shape)
		v.Producer = n
		n.Outputs = append(n.Outputs, v)
	}
	g.Nodes = append(g.Nodes, n)
	return n.Outputs
}

// Rename gives a node output a new (unique) name, for readable graphs and
// for the onnx-community I/O names.
func (g *Graph) Rename(v *Value, name string) {
	if v.Name == name {
		return
	}
	if g.names[name] {
		panic(fmt.Sprintf("onnx: graph %s: value name %q is taken", g.Name, name))
	}
	delete(g.names, v.Name)
	g.names[name] = true
	v.Name = name
}
