package grad

import (
	"fmt"
	"slices"

	"github.com/igsearch/igsearch/onnx"
)

// Gradient checkpointing. A backward rule reads forward values (a MatMul's
// inputs, a Softmax's output), so by default every activation of the
// forward pass stays alive until the backward pass reaches its node: the
// activation memory of a deep model is the sum over its layers. With
// Options.Recompute, the nodes of each segment are emitted a second time,
// just before the backward pass enters the segment, and the segment's rules
// read those copies instead. The originals are then read only by the
// forward, so ONNX Runtime frees them as soon as the forward is done with
// them; what stays alive across the forward is each segment's input (the
// checkpoint) and the values that leave the segment other than by Output.
//
// The copies must not run early: ONNX Runtime orders nodes by data
// dependency only, and a copy that depends only on the checkpoint could run
// during the forward pass and save nothing. So the copy's input is gated on
// the gradient that arrives at the segment's output:
//
//	x̃ = Input + 0·dOutput[0]
//
// which is Input exactly (x + 0 = x in IEEE arithmetic for every finite x;
// a non-finite gradient makes everything non-finite anyway), costs one
// element-wise Add, and cannot be computed before the backward pass has
// reached the segment.

// Segment is one stretch of the forward pass to recompute: the nodes that
// depend on Input and that Output depends on, e.g. one decoder layer from
// the residual stream entering it to the residual stream leaving it. Values
// the segment reads from outside (weights, masks, rotary tables) are not
// recomputed. Segments must not share nodes.
type Segment struct {
	Input, Output *onnx.Value
}

// segment is a Segment resolved against the graph.
type segment struct {
	Segment
	nodes []*onnx.Node // in graph order
}

// segments resolves the Options.Recompute segments of nodes and maps each
// segment node to its segment's index.
func (b *builder) segments(nodes []*onnx.Node, segs []Segment) (map[*onnx.Node]int, error) {
	of := map[*onnx.Node]int{}
	for k, s := range segs {
		if s.Input == nil || s.Output == nil {
			return nil, fmt.Errorf("grad: recompute segment %d: nil Input or Output", k)
		}
		if s.Output.Producer == nil {
			return nil, fmt.Errorf("grad: recompute segment %d: output %s is not computed by a node", k, s.Output.Name)
		}
		// Nodes downstream of Input.
		down := map[*onnx.Value]bool{s.Input: true}
		below := map[*onnx.Node]bool{}
		for _, n := range nodes {
			for _, in := range n.Inputs {
				if in != nil && down[in] {
					below[n] = true
					break
				}
			}
			if below[n] {
				for _, o := range n.Outputs {
					down[o] = true
				}
			}
		}
		// Nodes upstream of Output, that are also downstream of Input.
		up := upstream(nodes, s.Output)
		var seg []*onnx.Node
		for i := len(nodes) - 1; i >= 0; i-- {
			if n := nodes[i]; below[n] && slices.ContainsFunc(n.Outputs, func(o *onnx.Value) bool { return up[o] }) {
				seg = append(seg, n)
			}
		}
		if !below[s.Output.Producer] {
			return nil, fmt.Errorf("grad: recompute segment %d: output %s does not depend on input %s", k, s.Output.Name, s.Input.Name)
		}
		for i, j := 0, len(seg)-1; i < j; i, j = i+1, j-1 {
			seg[i], seg[j] = seg[j], seg[i]
		}
		for _, n := range seg {
			if other, ok := of[n]; ok {
				return nil, fmt.Errorf("grad: recompute segments %d and %d share node %s (%s)", other, k, n.Name, n.Op)
			}
			of[n] = k
		}
		b.segs = append(b.segs, segment{Segment: s, nodes: seg})
	}
	b.recompute = make([]map[*onnx.Value]*onnx.Value, len(segs))
	return of, nil
}

// recomputed returns n as its rule must see it: a copy of the node whose
// inputs and outputs are the recomputed values of segment k, emitting the
// segment's recomputation first if this is the first node of k that the
// backward pass reaches.
func (b *builder) recomputed(k int, n *onnx.Node) *onnx.Node {
	m := b.recompute[k]
	if m == nil {
		m = b.emitRecompute(b.segs[k])
		b.recompute[k] = m
	}
	at := func(vs []*onnx.Value) []*onnx.Value {
		out := make([]*onnx.Value, len(vs))
		for i, v := range vs {
			out[i] = v
			if r, ok := m[v]; ok {
				out[i] = r
			}
		}
		return out
	}
	return &onnx.Node{Op: n.Op, Domain: n.Domain, Name: n.Name, Inputs: at(n.Inputs), Outputs: at(n.Outputs), Attrs: n.Attrs}
}

// emitRecompute writes the gated copy of segment s and returns the map from
// its forward values to their copies.
func (b *builder) emitRecompute(s segment) map[*onnx.Value]*onnx.Value {
	g := b.g
	start := len(g.Nodes)
	in := s.Input
	if dy := b.total(s.Output); dy != nil {
		first := g.Slice(g.Reshape(dy, -1), []int64{0}, []int64{0}, []int64{1})
		zero := g.Mul(first, b.scalar(dy.Type, 0))
		if zero.Type != in.Type {
			zero = g.Cast(zero, in.Type)
		}
		in = g.Add(s.Input, zero)
		in.Shape = append(onnx.Shape(nil), s.Input.Shape...)
	}
	m := map[*onnx.Value]*onnx.Value{s.Input: in}
	b.canon[in] = s.Input
	for _, n := range s.nodes {
		ins := make([]*onnx.Value, len(n.Inputs))
		for i, v := range n.Inputs {
			ins[i] = v
			if r, ok := m[v]; ok {
				ins[i] = r
			}
		}
		specs := make([]onnx.OutSpec, len(n.Outputs))
		for i, o := range n.Outputs {
			specs[i] = onnx.OutSpec{Type: o.Type, Shape: append(onnx.Shape(nil), o.Shape...)}
		}
		outs := g.Node(n.Op, n.Domain, ins, n.Attrs, specs...)
		for i, o := range n.Outputs {
			m[o] = outs[i]
			b.canon[outs[i]] = o
		}
	}
	b.emitted = append(b.emitted, [2]int{start, len(g.Nodes)})
	return m
}

// pruneRecomputed removes the recomputation nodes that no node, graph
// output or returned gradient reads (a forward value whose rule never
// looks at it is not worth recomputing).
func (b *builder) pruneRecomputed(keep []*onnx.Value) {
	if len(b.emitted) == 0 {
		return
	}
	g := b.g
	readers := map[*onnx.Value]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != nil {
				readers[in]++
			}
		}
	}
	for _, v := range g.Outputs {
		readers[v]++
	}
	for _, v := range keep {
		readers[v]++
	}
	dead := map[*onnx.Node]bool{}
	for r := len(b.emitted) - 1; r >= 0; r-- {
		for i := b.emitted[r][1] - 1; i >= b.emitted[r][0]; i-- {
			n := g.Nodes[i]
			used := false
			for _, o := range n.Outputs {
				if readers[o] > 0 {
					used = true
					break
				}
			}
			if used {
				continue
			}
			dead[n] = true
			for _, in := range n.Inputs {
				if in != nil {
					readers[in]--
				}
			}
		}
	}
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		if !dead[n] {
			kept = append(kept, n)
		}
	}
	for i := len(kept); i < len(g.Nodes); i++ {
		g.Nodes[i] = nil
	}
	g.Nodes = kept
}
