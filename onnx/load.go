package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Model is a decoded .onnx file: the model-level fields and the graph, with
// values typed as the file declares them. Intermediate values the file gives
// no value_info for have dtype Undefined and a nil Shape.
type Model struct {
	// Path is the file it came from ("" for Decode).
	Path            string
	IRVersion       int64
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	Doc             string
	// Opsets maps operator domains to versions ("" is the ONNX domain; a file
	// that spells it "ai.onnx" is normalised to "").
	Opsets map[string]int64
	// Metadata holds the model's metadata_props.
	Metadata map[string]string
	// Graph is the main graph; Graph.Opsets is Opsets. Graph inputs that are
	// also initializers (IR < 4 files) are listed only as initializers.
	Graph *Graph
}

// LoadOptions adjust Load and Decode.
type LoadOptions struct {
	// SkipData leaves initializer data unread (Tensor.Raw nil), to list a
	// model's inputs, outputs and initializers cheaply.
	SkipData bool
	// Dir is where Decode resolves external data files; Load uses the
	// model file's directory.
	Dir string
}

// ErrCorrupt marks a file that is not a well-formed ONNX model.
var ErrCorrupt = errors.New("corrupt or truncated ONNX model")

// Load reads the .onnx file at path with every initializer's data: inline
// (raw_data or the typed fields such as float_data and int64_data) or in
// external data files relative to the model's directory.
func Load(path string) (*Model, error) { return LoadWith(path, LoadOptions{}) }

// LoadWith is Load with options (opts.Dir is ignored). The file is read
// incrementally: initializer data is read straight into each tensor.
func LoadWith(path string, opts LoadOptions) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnx %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("onnx %s: %w", path, err)
	}
	opts.Dir = filepath.Dir(path)
	d := &decoder{opts: opts, ext: map[string]*os.File{}}
	defer d.close()
	m, err := d.model(msg{r: f, end: st.Size()})
	if err != nil {
		return nil, fmt.Errorf("onnx %s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

// Decode parses a serialised ModelProto. Initializer data aliases data.
func Decode(data []byte, opts LoadOptions) (*Model, error) {
	d := &decoder{opts: opts, ext: map[string]*os.File{}}
	defer d.close()
	m, err := d.model(msg{buf: data, end: int64(len(data))})
	if err != nil {
		return nil, fmt.Errorf("onnx model: %w", err)
	}
	return m, nil
}

// msg is a protobuf message being decoded: the range [off, end) of an
// in-memory buffer, or of a file read on demand.
type msg struct {
	buf []byte
	r   io.ReaderAt
	off int64
	end int64
}

// at returns n bytes at off (aliasing buf for in-memory messages).
func (m *msg) at(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > m.end {
		return nil, fmt.Errorf("%w: field runs past the end of its message", ErrCorrupt)
	}
	if m.buf != nil {
		return m.buf[off : off+n : off+n], nil
	}
	b := make([]byte, n)
	if _, err := m.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: reading %d bytes at %d: %v", ErrCorrupt, n, off, err)
	}
	return b, nil
}

func (m *msg) varint() (uint64, error) {
	n := min(int64(binary.MaxVarintLen64), m.end-m.off)
	b, err := m.at(m.off, n)
	if err != nil {
		return 0, err
	}
	v, k := protowire.ConsumeVarint(b)
	if k < 0 {
		return 0, fmt.Errorf("%w: bad varint at %d", ErrCorrupt, m.off)
	}
	m.off += int64(k)
	return v, nil
}

// field is one decoded field: a scalar in v, or a length-delimited payload
// in sub.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	sub msg
}

func (m *msg) more() bool { return m.off < m.end }

func (m *msg) next() (field, error) {
	tag, err := m.varint()
	if err != nil {
		return field{}, err
	}
	num, typ := protowire.DecodeTag(tag)
	if num <= 0 {
		return field{}, fmt.Errorf("%w: bad field tag %d", ErrCorrupt, tag)
	}
	f := field{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		f.v, err = m.varint()
	case protowire.Fixed32Type:
		var b []byte
		if b, err = m.at(m.off, 4); err == nil {
			f.v = uint64(binary.LittleEndian.Uint32(b))
			m.off += 4
		}
	case protowire.Fixed64Type:
		var b []byte
		if b, err = m.at(m.off, 8); err == nil {
			f.v = binary.LittleEndian.Uint64(b)
			m.off += 8
		}
	case protowire.BytesType:
		var n uint64
		if n, err = m.varint(); err == nil {
			if n > uint64(m.end-m.off) {
				return f, fmt.Errorf("%w: field %d claims %d bytes, %d left", ErrCorrupt, num, n, m.end-m.off)
			}
			f.sub = msg{buf: m.buf, r: m.r, off: m.off, end: m.off + int64(n)}
			m.off += int64(n)
		}
	default:
		return f, fmt.Errorf("%w: unsupported wire type %d in field %d", ErrCorrupt, typ, num)
	}
	return f, err
}

// bytes returns the payload of a length-delimited field.
func (f *field) bytes() ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, fmt.Errorf("%w: field %d: want bytes, wire type %d", ErrCorrupt, f.num, f.typ)
	}
	return f.sub.at(f.sub.off, f.sub.end-f.sub.off)
}

func (f *field) string() (string, error) {
	b, err := f.bytes()
	return string(b), err
}

// load returns the field's sub-message read into memory.
func (f *field) load() (msg, error) {
	b, err := f.bytes()
	if err != nil {
		return msg{}, err
	}
	return msg{buf: b, end: int64(len(b))}, nil
}

func (f *field) scalar() (uint64, error) {
	if f.typ == protowire.BytesType {
		return 0, fmt.Errorf("%w: field %d: want a scalar, got bytes", ErrCorrupt, f.num)
	}
	return f.v, nil
}

// int64s decodes a repeated int64 field, packed or not.
func (f *field) int64s(dst []int64) ([]int64, error) {
	if f.typ != protowire.BytesType {
		return append(dst, int64(f.v)), nil
	}
	b, err := f.bytes()
	if err != nil {
		return nil, err
	}
	for len(b) > 0 {
		v, k := protowire.ConsumeVarint(b)
		if k < 0 {
			return nil, fmt.Errorf("%w: bad packed varint in field %d", ErrCorrupt, f.num)
		}
		dst = append(dst, int64(v))
		b = b[k:]
	}
	return dst, nil
}

// fixed appends the little-endian bytes of a repeated fixed-width field
// (float, double), packed or not.
func (f *field) fixed(dst []byte, width int) ([]byte, error) {
	if f.typ != protowire.BytesType {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], f.v)
		return append(dst, b[:width]...), nil
	}
	b, err := f.bytes()
	if err != nil {
		return nil, err
	}
	if len(b)%width != 0 {
		return nil, fmt.Errorf("%w: packed field %d is %d bytes, not a multiple of %d", ErrCorrupt, f.num, len(b), width)
	}
	return append(dst, b...), nil
}

type decoder struct {
	opts LoadOptions
	ext  map[string]*os.File
}

func (d *decoder) close() {
	for _, f := range d.ext {
		f.Close()
	}
}

func (d *decoder) model(m msg) (*Model, error) {
	out := &Model{Opsets: map[string]int64{}}
	var graph *field
	for m.more() {
		f, err := m.next()
		if err != nil {
			return nil, err
		}
		switch f.num {
		case fModelIRVersion:
			v, err := f.scalar()
			if err != nil {
				return nil, err
			}
			out.IRVersion = int64(v)
		case fModelProducerName:
			if out.ProducerName, err = f.string(); err != nil {
				return nil, err
			}
		case fModelProducerVersion:
			if out.ProducerVersion, err = f.string(); err != nil {
				return nil, err
			}
		case fModelDomain:
			if out.Domain, err = f.string(); err != nil {
				return nil, err
			}
		case fModelModelVersion:
			v, err := f.scalar()
			if err != nil {
				return nil, err
			}
			out.ModelVersion = int64(v)
		case fModelDoc:
			if out.Doc, err = f.string(); err != nil {
				return nil, err
			}
		case fModelOpset:
			dom, ver, err := opset(f)
			if err != nil {
				return nil, fmt.Errorf("opset_import: %w", err)
			}
			out.Opsets[dom] = ver
		case fModelGraph:
			g := f
			graph = &g
		case 14: // metadata_props
			k, v, err := entry(f)
			if err != nil {
				return nil, fmt.Errorf("metadata_props: %w", err)
			}
			if out.Metadata == nil {
				out.Metadata = map[string]string{}
			}
			out.Metadata[k] = v
		}
	}
	if out.IRVersion == 0 {
		return nil, fmt.Errorf("%w: no ir_version (not an ONNX model?)", ErrCorrupt)
	}
	if graph == nil {
		return nil, fmt.Errorf("%w: no graph", ErrCorrupt)
	}
	g, err := d.graph(graph.sub, nil, true)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	g.Opsets = out.Opsets
	out.Graph = g
	return out, nil
}

func opset(f field) (string, int64, error) {
	m, err := f.load()
	if err != nil {
		return "", 0, err
	}
	var dom string
	var ver int64
	for m.more() {
		f, err := m.next()
		if err != nil {
			return "", 0, err
		}
		switch f.num {
		case fOpsetDomain:
			if dom, err = f.string(); err != nil {
				return "", 0, err
			}
		case fOpsetVersion:
			v, err := f.scalar()
			if err != nil {
				return "", 0, err
			}
			ver = int64(v)
		}
	}
	if dom == "ai.onnx" {
		dom = ""
	}
	return dom, ver, nil
}

func entry(f field) (string, string, error) {
	m, err := f.load()
	if err != nil {
		return "", "", err
	}
	var k, v string
	for m.more() {
		f, err := m.next()
		if err != nil {
			return "", "", err
		}
		switch f.num {
		case fEntryKey:
			k, err = f.string()
		case fEntryValue:
			v, err = f.string()
		}
		if err != nil {
			return "", "", err
		}
	}
	return k, v, nil
}

// rawNode is a NodeProto before its value names are resolved.
type rawNode struct {
	n       *Node
	inputs  []string
	outputs []string
}

// scope resolves value names in a graph and its enclosing graphs.
type scope struct {
	vals   map[string]*Value
	parent *scope
	// outer marks the placeholder scope around a subgraph: any name is
	// accepted as a value of an enclosing graph.
	outer bool
}

func (s *scope) lookup(name string) *Value {
	for ; s != nil; s = s.parent {
		if v, ok := s.vals[name]; ok {
			return v
		}
		if s.outer {
			v := &Value{Name: name, noShape: true}
			s.vals[name] = v
			return v
		}
	}
	return nil
}

// graph decodes a GraphProto; top says whether its initializers may be read
// lazily from a file-backed message.
func (d *decoder) graph(m msg, parent *scope, top bool) (*Graph, error) {
	g := &Graph{names: map[string]bool{}}
	var nodes []rawNode
	var inputs, outputs, infos []*Value
	for m.more() {
		f, err := m.next()
		if err != nil {
			return nil, err
		}
		switch f.num {
		case fGraphNode:
			sub, err := f.load()
			if err != nil {
				return nil, fmt.Errorf("node %d: %w", len(nodes), err)
			}
			rn, err := d.node(sub, parent)
			if err != nil {
				return nil, fmt.Errorf("node %d: %w", len(nodes), err)
			}
			nodes = append(nodes, rn)
		case fGraphName:
			if g.Name, err = f.string(); err != nil {
				return nil, err
			}
		case fGraphInitializer:
			if f.typ != protowire.BytesType {
				return nil, fmt.Errorf("%w: initializer is not a message", ErrCorrupt)
			}
			sub := f.sub
			if !top {
				if sub, err = f.load(); err != nil {
					return nil, err
				}
			}
			name, t, err := d.tensor(sub)
			if err != nil {
				return nil, fmt.Errorf("initializer %d %q: %w", len(g.Initializers), name, err)
			}
			g.Initializers = append(g.Initializers, &Value{Name: name, Type: t.DType, Shape: Dims(t.Dims...), Init: t})
		case fGraphDoc:
			if g.Doc, err = f.string(); err != nil {
				return nil, err
			}
		case fGraphInput, fGraphOutput, fGraphValueInfo:
			v, err := valueInfo(f)
			if err != nil {
				return nil, fmt.Errorf("value_info (field %d): %w", f.num, err)
			}
			switch f.num {
			case fGraphInput:
				inputs = append(inputs, v)
			case fGraphOutput:
				outputs = append(outputs, v)
			default:
				infos = append(infos, v)
			}
		case 15: // sparse_initializer
			return nil, fmt.Errorf("sparse initializers are not supported")
		}
	}
	return g, g.resolve(nodes, inputs, outputs, infos, parent)
}

// resolve links the decoded pieces into Values: graph inputs, initializers,
// node outputs (typed from value_info or the graph outputs where given).
func (g *Graph) resolve(nodes []rawNode, inputs, outputs, infos []*Value, parent *scope) error {
	sc := &scope{vals: map[string]*Value{}, parent: parent}
	define := func(v *Value) error {
		if v.Name == "" {
			return fmt.Errorf("%w: value with an empty name", ErrCorrupt)
		}
		if _, dup := sc.vals[v.Name]; dup {
			return fmt.Errorf("%w: value %q is defined twice", ErrCorrupt, v.Name)
		}
		sc.vals[v.Name] = v
		g.names[v.Name] = true
		return nil
	}
	for _, v := range g.Initializers {
		if err := define(v); err != nil {
			return fmt.Errorf("initializer: %w", err)
		}
	}
	for _, v := range inputs {
		if init, ok := sc.vals[v.Name]; ok && init.Init != nil {
			continue // an IR < 4 input that only carries an initializer
		}
		if err := define(v); err != nil {
			return fmt.Errorf("input: %w", err)
		}
		g.Inputs = append(g.Inputs, v)
	}
	declared := map[string]*Value{}
	for _, v := range infos {
		declared[v.Name] = v
	}
	for _, v := range outputs {
		declared[v.Name] = v
	}
	for _, rn := range nodes {
		for _, name := range rn.outputs {
			if name == "" {
				rn.n.Outputs = append(rn.n.Outputs, nil)
				continue
			}
			v := &Value{Name: name, Producer: rn.n, noShape: true}
			if dv, ok := declared[name]; ok {
				v.Type, v.Shape, v.noShape = dv.Type, dv.Shape, dv.noShape
			}
			if err := define(v); err != nil {
				return fmt.Errorf("node %s (%s): output: %w", rn.n.Name, rn.n.Op, err)
			}
			rn.n.Outputs = append(rn.n.Outputs, v)
		}
	}
	for _, rn := range nodes {
		for _, name := range rn.inputs {
			if name == "" {
				rn.n.Inputs = append(rn.n.Inputs, nil)
				continue
			}
			v := sc.lookup(name)
			if v == nil {
				return fmt.Errorf("node %s (%s): input %q is not defined", rn.n.Name, rn.n.Op, name)
			}
			rn.n.Inputs = append(rn.n.Inputs, v)
		}
		g.Nodes = append(g.Nodes, rn.n)
	}
	for _, o := range outputs {
		v := sc.lookup(o.Name)
		if v == nil {
			return fmt.Errorf("output %q is not defined", o.Name)
		}
		if v.Type == Undefined {
			v.Type, v.Shape, v.noShape = o.Type, o.Shape, o.noShape
		}
		g.Outputs = append(g.Outputs, v)
	}
	for _, info := range infos {
		if v, ok := sc.vals[info.Name]; ok && v.Producer != nil {
			g.ValueInfo = append(g.ValueInfo, v)
		}
	}
	return nil
}

func valueInfo(f field) (*Value, error) {
	m, err := f.load()
	if err != nil {
		return nil, err
	}
	v := &Value{noShape: true}
	for m.more() {
		f, err := m.next()
		if err != nil {
			return nil, err
		}
		switch f.num {
		case fValueName:
			if v.Name, err = f.string(); err != nil {
				return nil, err
			}
		case fValueType:
			if err := typeProto(f, v); err != nil {
				return nil, fmt.Errorf("%q: %w", v.Name, err)
			}
		}
	}
	return v, nil
}

func typeProto(f field, v *Value) error {
	m, err := f.load()
	if err != nil {
		return err
	}
	for m.more() {
		f, err := m.next()
		if err != nil {
			return err
		}
		if f.num != fTypeTensor {
			continue // sequences, maps, optionals: left Undefined
		}
		tm, err := f.load()
		if err != nil {
			return err
		}
		for tm.more() {
			f, err := tm.next()
			if err != nil {
				return err
			}
			switch f.num {
			case fTensorElem:
				t, err := f.scalar()
				if err != nil {
					return err
				}
				v.Type = DType(int32(t))
			case fTensorShape:
				if v.Shape, err = shapeProto(f); err != nil {
					return err
				}
				v.noShape = false
			}
		}
	}
	return nil
}

func shapeProto(f field) (Shape, error) {
	m, err := f.load()
	if err != nil {
		return nil, err
	}
	s := Shape{}
	for m.more() {
		f, err := m.next()
		if err != nil {
			return nil, err
		}
		if f.num != fShapeDim {
			continue
		}
		dm, err := f.load()
		if err != nil {
			return nil, err
		}
		d := Unknown
		for dm.more() {
			f, err := dm.next()
			if err != nil {
				return nil, err
			}
			switch f.num {
			case fDimValue:
				n, err := f.scalar()
				if err != nil {
					return nil, err
				}
				d = D(int64(n))
				if d.Size < 0 {
					return nil, fmt.Errorf("%w: negative dim_value %d", ErrCorrupt, d.Size)
				}
			case fDimParam:
				p, err := f.string()
				if err != nil {
					return nil, err
				}
				d = Sym(p)
			}
		}
		s = append(s, d)
	}
	return s, nil
}

func (d *decoder) node(m msg, parent *scope) (rawNode, error) {
	n := &Node{}
	rn := rawNode{n: n}
	for m.more() {
		f, err := m.next()
		if err != nil {
			return rn, err
		}
		switch f.num {
		case fNodeInput:
			s, err := f.string()
			if err != nil {
				return rn, err
			}
			rn.inputs = append(rn.inputs, s)
		case fNodeOutput:
			s, err := f.string()
			if err != nil {
				return rn, err
			}
			rn.outputs = append(rn.outputs, s)
		case fNodeName:
			if n.Name, err = f.string(); err != nil {
				return rn, err
			}
		case fNodeOp:
			if n.Op, err = f.string(); err != nil {
				return rn, err
			}
		case fNodeDomain:
			if n.Domain, err = f.string(); err != nil {
				return rn, err
			}
			if n.Domain == "ai.onnx" {
				n.Domain = ""
			}
		case fNodeAttr:
			am, err := f.load()
			if err != nil {
				return rn, err
			}
			name, val, err := d.attr(am, parent)
			if err != nil {
				return rn, fmt.Errorf("%s: attribute %q: %w", n.Op, name, err)
			}
			if n.Attrs == nil {
				n.Attrs = Attrs{}
			}
			if val != nil {
				n.Attrs[name] = val
			}
		}
	}
	if n.Op == "" {
		return rn, fmt.Errorf("%w: node without op_type", ErrCorrupt)
	}
	return rn, nil
}

// attr decodes an AttributeProto into the Go types Attrs documents (float32,
// int64, string, *Tensor, *Graph and their slices). Subgraphs see the values
// of enclosing graphs by name.
func (d *decoder) attr(m msg, parent *scope) (string, any, error) {
	var name string
	var typ int64
	var f32 *float32
	var i64 *int64
	var str []byte
	var hasStr bool
	var floats []byte
	var ints []int64
	var strs []string
	var tensors []*Tensor
	var graphs []msg
	for m.more() {
		f, err := m.next()
		if err != nil {
			return name, nil, err
		}
		switch f.num {
		case fAttrName:
			if name, err = f.string(); err != nil {
				return name, nil, err
			}
		case fAttrType:
			v, err := f.scalar()
			if err != nil {
				return name, nil, err
			}
			typ = int64(v)
		case fAttrF:
			v, err := f.scalar()
			if err != nil {
				return name, nil, err
			}
			x := math.Float32frombits(uint32(v))
			f32 = &x
		case fAttrI:
			v, err := f.scalar()
			if err != nil {
				return name, nil, err
			}
			x := int64(v)
			i64 = &x
		case fAttrS:
			if str, err = f.bytes(); err != nil {
				return name, nil, err
			}
			hasStr = true
		case fAttrT, fAttrTensors:
			_, t, err := d.tensor(f.sub)
			if err != nil {
				return name, nil, err
			}
			tensors = append(tensors, t)
			if f.num == fAttrT && typ == 0 {
				typ = attrTensor
			}
		case fAttrG, fAttrGraphs:
			if f.typ != protowire.BytesType {
				return name, nil, fmt.Errorf("%w: graph attribute is not a message", ErrCorrupt)
			}
			graphs = append(graphs, f.sub)
			if f.num == fAttrG && typ == 0 {
				typ = attrGraph
			}
		case fAttrFloats:
			if floats, err = f.fixed(floats, 4); err != nil {
				return name, nil, err
			}
		case fAttrInts:
			if ints, err = f.int64s(ints); err != nil {
				return name, nil, err
			}
		case fAttrStrings:
			s, err := f.string()
			if err != nil {
				return name, nil, err
			}
			strs = append(strs, s)
		}
	}
	if typ == 0 { // IR < 2 files carry no type: infer it
		switch {
		case f32 != nil:
			typ = attrFloat
		case i64 != nil:
			typ = attrInt
		case hasStr:
			typ = attrString
		case floats != nil:
			typ = attrFloats
		case ints != nil:
			typ = attrInts
		case strs != nil:
			typ = attrStrings
		}
	}
	subgraphs := func() ([]*Graph, error) {
		var out []*Graph
		for _, gm := range graphs {
			sub, err := (&field{typ: protowire.BytesType, sub: gm}).load()
			if err != nil {
				return nil, err
			}
			// Names a subgraph uses from enclosing graphs resolve to
			// placeholders: only the names matter for re-encoding.
			sg, err := d.graph(sub, &scope{vals: map[string]*Value{}, parent: parent, outer: true}, false)
			if err != nil {
				return nil, fmt.Errorf("subgraph: %w", err)
			}
			out = append(out, sg)
		}
		return out, nil
	}
	switch typ {
	case attrFloat:
		if f32 == nil {
			return name, float32(0), nil
		}
		return name, *f32, nil
	case attrInt:
		if i64 == nil {
			return name, int64(0), nil
		}
		return name, *i64, nil
	case attrString:
		return name, string(str), nil
	case attrTensor:
		if len(tensors) == 0 {
			return name, nil, fmt.Errorf("%w: tensor attribute without a tensor", ErrCorrupt)
		}
		return name, tensors[0], nil
	case attrTensors:
		return name, tensors, nil
	case attrFloats:
		out := make([]float32, len(floats)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(floats[4*i:]))
		}
		return name, out, nil
	case attrInts:
		if ints == nil {
			ints = []int64{}
		}
		return name, ints, nil
	case attrStrings:
		if strs == nil {
			strs = []string{}
		}
		return name, strs, nil
	case attrGraph:
		gs, err := subgraphs()
		if err != nil {
			return name, nil, err
		}
		if len(gs) == 0 {
			return name, nil, fmt.Errorf("%w: graph attribute without a graph", ErrCorrupt)
		}
		return name, gs[0], nil
	case attrGraphs:
		gs, err := subgraphs()
		return name, gs, err
	}
	return name, nil, fmt.Errorf("unsupported attribute type %d", typ)
}

// tensor decodes a TensorProto. m may be file-backed: raw_data is then read
// straight into the tensor (or skipped with SkipData).
func (d *decoder) tensor(m msg) (string, *Tensor, error) {
	t := &Tensor{Dims: []int64{}}
	var name string
	var raw *msg
	var typed []byte
	var typedInts []int64
	var hasTyped bool
	var location string
	var offset, length int64 = 0, -1
	external := false
	for m.more() {
		f, err := m.next()
		if err != nil {
			return name, nil, err
		}
		switch f.num {
		case fTensorDims:
			if t.Dims, err = f.int64s(t.Dims); err != nil {
				return name, nil, err
			}
		case fTensorDType:
			v, err := f.scalar()
			if err != nil {
				return name, nil, err
			}
			t.DType = DType(int32(v))
		case fTensorName:
			if name, err = f.string(); err != nil {
				return name, nil, err
			}
		case fTensorRaw:
			if f.typ != protowire.BytesType {
				return name, nil, fmt.Errorf("%w: raw_data is not bytes", ErrCorrupt)
			}
			sub := f.sub
			raw = &sub
		case fTensorFloats:
			hasTyped = true
			if typed, err = f.fixed(typed, 4); err != nil {
				return name, nil, err
			}
		case fTensorDouble:
			hasTyped = true
			if typed, err = f.fixed(typed, 8); err != nil {
				return name, nil, err
			}
		case fTensorInt32s, fTensorInt64s, fTensorUint64:
			hasTyped = true
			if typedInts, err = f.int64s(typedInts); err != nil {
				return name, nil, err
			}
		case fTensorString:
			return name, nil, fmt.Errorf("string tensors are not supported")
		case 3: // segment
			return name, nil, fmt.Errorf("segmented tensors are not supported")
		case fTensorExt:
			k, v, err := entry(f)
			if err != nil {
				return name, nil, fmt.Errorf("external_data: %w", err)
			}
			switch k {
			case "location":
				location = v
			case "offset", "length":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return name, nil, fmt.Errorf("%w: external_data %s %q", ErrCorrupt, k, v)
				}
				if k == "offset" {
					offset = n
				} else {
					length = n
				}
			}
		case fTensorLoc:
			v, err := f.scalar()
			if err != nil {
				return name, nil, err
			}
			external = v == 1
		}
	}
	size := t.DType.Size()
	if size == 0 {
		return name, nil, fmt.Errorf("unsupported dtype %s", t.DType)
	}
	n := int64(1)
	for _, dim := range t.Dims {
		if dim < 0 || (dim > 0 && n > (math.MaxInt64/8)/dim) {
			return name, nil, fmt.Errorf("%w: bad dims %v", ErrCorrupt, t.Dims)
		}
		n *= dim
	}
	want := n * int64(size)
	switch {
	case external:
		if location == "" {
			return name, nil, fmt.Errorf("%w: external data without a location", ErrCorrupt)
		}
		if length < 0 {
			length = want
		}
		if length != want {
			return name, nil, fmt.Errorf("%w: external data is %d bytes, %s%v needs %d", ErrCorrupt, length, t.DType, t.Dims, want)
		}
		if d.opts.SkipData {
			return name, t, nil
		}
		b, err := d.readExternal(location, offset, length)
		if err != nil {
			return name, nil, err
		}
		t.Raw = b
	case raw != nil:
		if l := raw.end - raw.off; l != want {
			return name, nil, fmt.Errorf("%w: raw_data is %d bytes, %s%v needs %d", ErrCorrupt, l, t.DType, t.Dims, want)
		}
		if d.opts.SkipData && raw.buf == nil {
			return name, t, nil
		}
		b, err := raw.at(raw.off, want)
		if err != nil {
			return name, nil, err
		}
		t.Raw = b
	case hasTyped || n == 0:
		b, err := typedRaw(t, typed, typedInts, n)
		if err != nil {
			return name, nil, err
		}
		t.Raw = b
	default:
		return name, nil, fmt.Errorf("%w: tensor has no data", ErrCorrupt)
	}
	return name, t, nil
}

// typedRaw converts the typed data fields (float_data, int32_data, ...) to
// little-endian raw bytes.
func typedRaw(t *Tensor, fixed []byte, ints []int64, n int64) ([]byte, error) {
	size := int64(t.DType.Size())
	switch t.DType {
	case Float, Double:
		if int64(len(fixed)) != n*size {
			return nil, fmt.Errorf("%w: %d bytes of typed data for %s%v", ErrCorrupt, len(fixed), t.DType, t.Dims)
		}
		return fixed, nil
	}
	if int64(len(ints)) != n {
		return nil, fmt.Errorf("%w: %d typed values for %s%v", ErrCorrupt, len(ints), t.DType, t.Dims)
	}
	out := make([]byte, n*size)
	for i, v := range ints {
		switch size {
		case 1:
			out[i] = byte(v)
		case 2:
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		case 4:
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
		case 8:
			binary.LittleEndian.PutUint64(out[8*i:], uint64(v))
		}
	}
	return out, nil
}

// readExternal reads length bytes at offset of an external data file, which
// must lie inside the model's directory.
func (d *decoder) readExternal(location string, offset, length int64) ([]byte, error) {
	if filepath.IsAbs(location) || strings.HasPrefix(filepath.Clean(location), "..") {
		return nil, fmt.Errorf("%w: external data location %q is outside the model's directory", ErrCorrupt, location)
	}
	if d.opts.Dir == "" {
		return nil, fmt.Errorf("external data %q: no directory to resolve it in (set LoadOptions.Dir)", location)
	}
	path := filepath.Join(d.opts.Dir, location)
	f, ok := d.ext[path]
	if !ok {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("external data: %w", err)
		}
		d.ext[path] = f
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	if offset+length > st.Size() || offset+length < offset {
		return nil, fmt.Errorf("%w: external data %s: bytes %d..%d past its end (%d bytes)", ErrCorrupt, path, offset, offset+length, st.Size())
	}
	b := make([]byte, length)
	if _, err := f.ReadAt(b, offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return nil, fmt.Errorf("external data %s: %w", path, err)
	}
	return b, nil
}
