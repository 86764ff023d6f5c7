package onnx

import (
	"fmt"
	"io"
	"math"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// The ONNX protobuf (onnx.proto, IR version 10) is encoded and decoded by hand
// with protowire: the handful of messages the project needs are small, and a
// hand encoder can stream multi-gigabyte initializers straight from the
// tensors' memory to a file without building a second copy in a generated
// message. Field numbers below are onnx.proto's.

// IRVersion is the ONNX IR version written into every model (IR_VERSION
// 2024_3_25, the one opset 21–23 need).
const IRVersion = 10

// Producer is the producer_name written into every model.
const Producer = "igsearch"

// maxProto is protobuf's hard limit on one serialised message (2 GiB − 1).
const maxProto = math.MaxInt32

// ModelProto, GraphProto, NodeProto, AttributeProto, ValueInfoProto,
// TypeProto, TensorShapeProto, TensorProto field numbers.
const (
	fModelIRVersion       = 1
	fModelProducerName    = 2
	fModelProducerVersion = 3
	fModelDomain          = 4
	fModelModelVersion    = 5
	fModelDoc             = 6
	fModelGraph           = 7
	fModelOpset           = 8

	fOpsetDomain  = 1
	fOpsetVersion = 2

	fGraphNode        = 1
	fGraphName        = 2
	fGraphInitializer = 5
	fGraphDoc         = 10
	fGraphInput       = 11
	fGraphOutput      = 12
	fGraphValueInfo   = 13

	fNodeInput  = 1
	fNodeOutput = 2
	fNodeName   = 3
	fNodeOp     = 4
	fNodeAttr   = 5
	fNodeDoc    = 6
	fNodeDomain = 7

	fAttrName    = 1
	fAttrF       = 2
	fAttrI       = 3
	fAttrS       = 4
	fAttrT       = 5
	fAttrG       = 6
	fAttrFloats  = 7
	fAttrInts    = 8
	fAttrStrings = 9
	fAttrTensors = 10
	fAttrGraphs  = 11
	fAttrType    = 20

	fValueName = 1
	fValueType = 2

	fTypeTensor   = 1
	fTensorElem   = 1
	fTensorShape  = 2
	fShapeDim     = 1
	fDimValue     = 1
	fDimParam     = 2
	fTensorDims   = 1
	fTensorDType  = 2
	fTensorFloats = 4
	fTensorInt32s = 5
	fTensorString = 6
	fTensorInt64s = 7
	fTensorName   = 8
	fTensorRaw    = 9
	fTensorDouble = 10
	fTensorUint64 = 11
	fTensorExt    = 13
	fTensorLoc    = 14

	fEntryKey   = 1
	fEntryValue = 2
)

// AttributeProto.AttributeType values.
const (
	attrFloat   = 1
	attrInt     = 2
	attrString  = 3
	attrTensor  = 4
	attrGraph   = 5
	attrFloats  = 6
	attrInts    = 7
	attrStrings = 8
	attrTensors = 9
	attrGraphs  = 10
)

// bigField is the size from which a bytes field is kept as its own segment
// (referenced, not copied) while encoding.
const bigField = 64 << 10

// enc builds a protobuf message as a list of byte segments, so that large
// tensor data is referenced rather than copied; writeTo streams it out.
type enc struct {
	segs [][]byte
	cur  []byte
	n    int64
}

func (e *enc) flush() {
	if len(e.cur) > 0 {
		e.segs = append(e.segs, e.cur)
		e.cur = nil
	}
}

func (e *enc) tag(num protowire.Number, t protowire.Type) {
	before := len(e.cur)
	e.cur = protowire.AppendTag(e.cur, num, t)
	e.n += int64(len(e.cur) - before)
}

func (e *enc) uvarint(num protowire.Number, v uint64) {
	e.tag(num, protowire.VarintType)
	before := len(e.cur)
	e.cur = protowire.AppendVarint(e.cur, v)
	e.n += int64(len(e.cur) - before)
}

func (e *enc) int64(num protowire.Number, v int64) { e.uvarint(num, uint64(v)) }

func (e *enc) float32(num protowire.Number, f float32) {
	e.tag(num, protowire.Fixed32Type)
	e.cur = protowire.AppendFixed32(e.cur, math.Float32bits(f))
	e.n += 4
}

// bytes writes a length-delimited field; big payloads become their own
// segment and are not copied.
func (e *enc) bytes(num protowire.Number, b []byte) {
	e.tag(num, protowire.BytesType)
	before := len(e.cur)
	e.cur = protowire.AppendVarint(e.cur, uint64(len(b)))
	e.n += int64(len(e.cur)-before) + int64(len(b))
	if len(b) >= bigField {
		e.flush()
		e.segs = append(e.segs, b)
		return
	}
	e.cur = append(e.cur, b...)
}

func (e *enc) string(num protowire.Number, s string) {
	e.tag(num, protowire.BytesType)
	before := len(e.cur)
	e.cur = protowire.AppendVarint(e.cur, uint64(len(s)))
	e.cur = append(e.cur, s...)
	e.n += int64(len(e.cur) - before)
}

// msg embeds child as field num; child must not be used afterwards.
func (e *enc) msg(num protowire.Number, child *enc) {
	e.tag(num, protowire.BytesType)
	before := len(e.cur)
	e.cur = protowire.AppendVarint(e.cur, uint64(child.n))
	e.n += int64(len(e.cur)-before) + child.n
	if len(child.segs) == 0 {
		e.cur = append(e.cur, child.cur...)
		return
	}
	e.flush()
	e.segs = append(e.segs, child.segs...)
	if len(child.cur) > 0 {
		e.segs = append(e.segs, child.cur)
	}
}

func (e *enc) packedInt64s(num protowire.Number, vs []int64) {
	if len(vs) == 0 {
		return
	}
	var b []byte
	for _, v := range vs {
		b = protowire.AppendVarint(b, uint64(v))
	}
	e.bytes(num, b)
}

func (e *enc) packedFloats(num protowire.Number, vs []float32) {
	if len(vs) == 0 {
		return
	}
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = protowire.AppendFixed32(b, math.Float32bits(v))
	}
	e.bytes(num, b)
}

// writeTo streams the encoded message.
func (e *enc) writeTo(w io.Writer) (int64, error) {
	e.flush()
	var n int64
	for _, s := range e.segs {
		m, err := w.Write(s)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// bytesOut copies the encoded message into one slice.
func (e *enc) bytesOut() []byte {
	e.flush()
	out := make([]byte, 0, e.n)
	for _, s := range e.segs {
		out = append(out, s...)
	}
	return out
}

// externalRef says where an initializer's data lives in the external file.
type externalRef struct {
	location       string
	offset, length int64
}

// encodeModel encodes g as a ModelProto. ext, when non-nil, maps
// initializers whose data is written to an external file.
func (g *Graph) encodeModel(ext map[*Value]externalRef) (*enc, error) {
	m := &enc{}
	m.int64(fModelIRVersion, IRVersion)
	m.string(fModelProducerName, Producer)
	opsets := map[string]int64{"": DefaultOpset} // the ONNX domain is always imported
	for d, v := range g.Opsets {
		opsets[d] = v
	}
	domains := make([]string, 0, len(opsets))
	for d := range opsets {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		o := &enc{}
		o.string(fOpsetDomain, d)
		o.int64(fOpsetVersion, opsets[d])
		m.msg(fModelOpset, o)
	}
	ge, err := g.encodeGraph(ext)
	if err != nil {
		return nil, err
	}
	m.msg(fModelGraph, ge)
	return m, nil
}

func (g *Graph) encodeGraph(ext map[*Value]externalRef) (*enc, error) {
	e := &enc{}
	for i, n := range g.Nodes {
		ne, err := encodeNode(n, ext)
		if err != nil {
			return nil, fmt.Errorf("node %d (%s %s): %w", i, n.Op, n.Name, err)
		}
		e.msg(fGraphNode, ne)
	}
	name := g.Name
	if name == "" {
		name = "graph"
	}
	e.string(fGraphName, name)
	for _, v := range g.Initializers {
		if v.Init == nil {
			return nil, fmt.Errorf("initializer %q has no data", v.Name)
		}
		te, err := encodeTensor(v.Name, v.Init, ext[v])
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", v.Name, err)
		}
		e.msg(fGraphInitializer, te)
	}
	if g.Doc != "" {
		e.string(fGraphDoc, g.Doc)
	}
	for _, v := range g.Inputs {
		e.msg(fGraphInput, encodeValueInfo(v))
	}
	for _, v := range g.Outputs {
		if v == nil {
			return nil, fmt.Errorf("nil graph output")
		}
		e.msg(fGraphOutput, encodeValueInfo(v))
	}
	for _, v := range g.ValueInfo {
		e.msg(fGraphValueInfo, encodeValueInfo(v))
	}
	return e, nil
}

func encodeValueInfo(v *Value) *enc {
	e := &enc{}
	e.string(fValueName, v.Name)
	if v.Type == Undefined {
		return e
	}
	tt := &enc{}
	tt.int64(fTensorElem, int64(v.Type))
	if !v.noShape {
		sh := &enc{}
		for _, d := range v.Shape {
			de := &enc{}
			switch {
			case d.Known():
				de.int64(fDimValue, d.Size)
			case d.Param != "":
				de.string(fDimParam, d.Param)
			}
			sh.msg(fShapeDim, de)
		}
		tt.msg(fTensorShape, sh)
	}
	te := &enc{}
	te.msg(fTypeTensor, tt)
	e.msg(fValueType, te)
	return e
}

func encodeNode(n *Node, ext map[*Value]externalRef) (*enc, error) {
	e := &enc{}
	for _, v := range n.Inputs {
		if v == nil {
			e.string(fNodeInput, "")
			continue
		}
		e.string(fNodeInput, v.Name)
	}
	for _, v := range n.Outputs {
		if v == nil {
			e.string(fNodeOutput, "")
			continue
		}
		e.string(fNodeOutput, v.Name)
	}
	if n.Name != "" {
		e.string(fNodeName, n.Name)
	}
	e.string(fNodeOp, n.Op)
	keys := make([]string, 0, len(n.Attrs))
	for k := range n.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ae, err := encodeAttr(k, n.Attrs[k], ext)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		e.msg(fNodeAttr, ae)
	}
	if n.Domain != "" {
		e.string(fNodeDomain, n.Domain)
	}
	return e, nil
}

func encodeAttr(name string, val any, ext map[*Value]externalRef) (*enc, error) {
	e := &enc{}
	e.string(fAttrName, name)
	ints := func(vs []int64) {
		e.packedInt64s(fAttrInts, vs)
		e.int64(fAttrType, attrInts)
	}
	floats := func(vs []float32) {
		e.packedFloats(fAttrFloats, vs)
		e.int64(fAttrType, attrFloats)
	}
	switch v := val.(type) {
	case int64:
		e.int64(fAttrI, v)
		e.int64(fAttrType, attrInt)
	case int:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case int32:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case int16:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case int8:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case uint8:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case uint16:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case uint32:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case uint64:
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("uint64 %d overflows int64", v)
		}
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case uint:
		if uint64(v) > math.MaxInt64 {
			return nil, fmt.Errorf("uint %d overflows int64", v)
		}
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case bool:
		var i int64
		if v {
			i = 1
		}
		e.int64(fAttrI, i)
		e.int64(fAttrType, attrInt)
	case DType:
		e.int64(fAttrI, int64(v))
		e.int64(fAttrType, attrInt)
	case float32:
		e.float32(fAttrF, v)
		e.int64(fAttrType, attrFloat)
	case float64:
		e.float32(fAttrF, float32(v))
		e.int64(fAttrType, attrFloat)
	case string:
		e.string(fAttrS, v)
		e.int64(fAttrType, attrString)
	case []byte:
		e.bytes(fAttrS, v)
		e.int64(fAttrType, attrString)
	case []int64:
		ints(v)
	case []int:
		vs := make([]int64, len(v))
		for i, x := range v {
			vs[i] = int64(x)
		}
		ints(vs)
	case []int32:
		vs := make([]int64, len(v))
		for i, x := range v {
			vs[i] = int64(x)
		}
		ints(vs)
	case []float32:
		floats(v)
	case []float64:
		vs := make([]float32, len(v))
		for i, x := range v {
			vs[i] = float32(x)
		}
		floats(vs)
	case []string:
		for _, s := range v {
			e.string(fAttrStrings, s)
		}
		e.int64(fAttrType, attrStrings)
	case *Tensor:
		te, err := encodeTensor("", v, externalRef{})
		if err != nil {
			return nil, err
		}
		e.msg(fAttrT, te)
		e.int64(fAttrType, attrTensor)
	case []*Tensor:
		for _, t := range v {
			te, err := encodeTensor("", t, externalRef{})
			if err != nil {
				return nil, err
			}
			e.msg(fAttrTensors, te)
		}
		e.int64(fAttrType, attrTensors)
	case *Graph:
		ge, err := v.encodeGraph(ext)
		if err != nil {
			return nil, fmt.Errorf("subgraph %s: %w", v.Name, err)
		}
		e.msg(fAttrG, ge)
		e.int64(fAttrType, attrGraph)
	case []*Graph:
		for _, sg := range v {
			ge, err := sg.encodeGraph(ext)
			if err != nil {
				return nil, fmt.Errorf("subgraph %s: %w", sg.Name, err)
			}
			e.msg(fAttrGraphs, ge)
		}
		e.int64(fAttrType, attrGraphs)
	default:
		return nil, fmt.Errorf("unsupported attribute type %T", val)
	}
	return e, nil
}

// encodeTensor writes a TensorProto; a non-empty ref.location stores the data
// externally instead of in raw_data.
func encodeTensor(name string, t *Tensor, ref externalRef) (*enc, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	e := &enc{}
	e.packedInt64s(fTensorDims, t.Dims)
	e.int64(fTensorDType, int64(t.DType))
	if name != "" {
		e.string(fTensorName, name)
	}
	if ref.location == "" {
		e.bytes(fTensorRaw, t.Raw)
		return e, nil
	}
	entry := func(k, v string) {
		kv := &enc{}
		kv.string(fEntryKey, k)
		kv.string(fEntryValue, v)
		e.msg(fTensorExt, kv)
	}
	entry("location", ref.location)
	entry("offset", fmt.Sprint(ref.offset))
	entry("length", fmt.Sprint(ref.length))
	e.int64(fTensorLoc, 1) // DataLocation EXTERNAL
	return e, nil
}

// Marshal serialises g as an ONNX ModelProto (IR version 10, the graph's
// opsets, producer "igsearch") with every initializer inline. It fails if the
// result would exceed protobuf's 2 GiB limit; use Save with external data
// for larger models.
func (g *Graph) Marshal() ([]byte, error) {
	m, err := g.encodeModel(nil)
	if err != nil {
		return nil, fmt.Errorf("onnx: graph %s: %w", g.Name, err)
	}
	if m.n > maxProto {
		return nil, fmt.Errorf("onnx: graph %s: model is %d bytes, over protobuf's 2 GiB limit; save it with external data", g.Name, m.n)
	}
	return m.bytesOut(), nil
}

// WriteTo streams g as a ModelProto with every initializer inline, without
// copying the initializer data. It fails before writing anything if the model
// would exceed 2 GiB.
func (g *Graph) WriteTo(w io.Writer) (int64, error) {
	m, err := g.encodeModel(nil)
	if err != nil {
		return 0, fmt.Errorf("onnx: graph %s: %w", g.Name, err)
	}
	if m.n > maxProto {
		return 0, fmt.Errorf("onnx: graph %s: model is %d bytes, over protobuf's 2 GiB limit; save it with external data", g.Name, m.n)
	}
	return m.writeTo(w)
}

// MarshalExternal serialises g like Marshal, except that the initializers
// for which external reports true are written as references to external data
// at location (offset 0, their byte length) with no data of their own: ONNX
// Runtime then takes their contents from the session options
// (AddExternalInitializers), so the proto stays small whatever the weights
// weigh.
func (g *Graph) MarshalExternal(location string, external func(*Value) bool) ([]byte, error) {
	ext := map[*Value]externalRef{}
	for _, v := range g.Initializers {
		if v.Init != nil && external(v) {
			ext[v] = externalRef{location: location, length: int64(len(v.Init.Raw))}
		}
	}
	m, err := g.encodeModel(ext)
	if err != nil {
		return nil, fmt.Errorf("onnx: graph %s: %w", g.Name, err)
	}
	if m.n > maxProto {
		return nil, fmt.Errorf("onnx: graph %s: model is %d bytes without its external initializers, over protobuf's 2 GiB limit", g.Name, m.n)
	}
	return m.bytesOut(), nil
}
