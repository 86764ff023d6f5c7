package onnx

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// sampleGraph exercises what the encoder must carry: symbolic dims, every
// attribute kind, initializers of several dtypes (one large enough to go to
// external data), a contrib-domain node and a subgraph.
func sampleGraph() *Graph {
	g := NewGraph("sample")
	g.Doc = "a sample"
	x := g.Input("x", Float, Sym("batch"), D(4))
	ids := g.Input("ids", Int64, Sym("batch"), Unknown)
	big := make([]float32, 4*512)
	for i := range big {
		big[i] = float32(i) * 0.25
	}
	w := g.Initializer("w", FloatTensor([]int64{4, 512}, big))
	g.Initializer("d", DoubleTensor([]int64{2}, []float64{1.5, -2}))
	g.Initializer("mask", BoolTensor([]int64{3}, []bool{true, false, true}))
	h := g.MatMul(x, w)
	g.Node("Custom", MicrosoftDomain, []*Value{h, nil, ids}, Attrs{
		"i": 3, "i8": int8(-2), "u": uint32(7), "b": true, "dt": Double,
		"f": 0.5, "f32": float32(1.25),
		"s": "text", "ints": []int{1, -2, 3}, "ints32": []int32{4}, "floats": []float64{0.5, 2},
		"strings": []string{"a", "b"}, "t": Int64Tensor([]int64{2}, []int64{5, 6}),
	}, OutSpec{Float, Shape{Sym("batch"), D(512)}})
	sub := NewGraph("then")
	sub.Outputs = append(sub.Outputs, &Value{Name: "x", Type: Float, Shape: Shape{Sym("batch"), D(4)}})
	g.Node("If", "", []*Value{g.Const(BoolTensor(nil, []bool{true}))}, Attrs{"then_branch": sub, "else_branch": sub}, OutSpec{Float, Shape{Sym("batch"), D(4)}})
	g.Output("h", h)
	g.Output("s", g.ReduceSum(h, false))
	return g
}

func TestMarshalRoundTrip(t *testing.T) {
	g := sampleGraph()
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Fatal("WriteTo and Marshal differ")
	}
	m, err := Decode(b, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.IRVersion != IRVersion || m.ProducerName != Producer {
		t.Errorf("ir_version %d producer %q", m.IRVersion, m.ProducerName)
	}
	if want := map[string]int64{"": DefaultOpset, MicrosoftDomain: 1}; !reflect.DeepEqual(m.Opsets, want) {
		t.Errorf("opsets %v, want %v", m.Opsets, want)
	}
	mg := m.Graph
	if mg.Name != "sample" || mg.Doc != "a sample" {
		t.Errorf("graph name %q doc %q", mg.Name, mg.Doc)
	}
	var ins, outs []string
	for _, v := range mg.Inputs {
		ins = append(ins, v.String())
	}
	for _, v := range mg.Outputs {
		outs = append(outs, v.String())
	}
	if got := strings.Join(ins, " "); got != "x:float32[batch,4] ids:int64[batch,?]" {
		t.Errorf("inputs %s", got)
	}
	if got := strings.Join(outs, " "); got != "h:float32[batch,512] s:float32[]" {
		t.Errorf("outputs %s", got)
	}
	if len(mg.Initializers) != len(g.Initializers) {
		t.Fatalf("%d initializers, want %d", len(mg.Initializers), len(g.Initializers))
	}
	for i, v := range g.Initializers {
		mv := mg.Initializers[i]
		if mv.Name != v.Name || mv.Init.DType != v.Init.DType || !slices.Equal(mv.Init.Dims, v.Init.Dims) || !bytes.Equal(mv.Init.Raw, v.Init.Raw) {
			t.Errorf("initializer %d: %v, want %v", i, mv, v)
		}
	}
	var custom, iff *Node
	for _, n := range mg.Nodes {
		switch n.Op {
		case "Custom":
			custom = n
		case "If":
			iff = n
		}
	}
	if custom == nil || custom.Domain != MicrosoftDomain || len(custom.Inputs) != 3 || custom.Inputs[1] != nil || custom.Inputs[2] != mg.Inputs[1] {
		t.Fatalf("custom node %+v", custom)
	}
	want := Attrs{
		"i": int64(3), "i8": int64(-2), "u": int64(7), "b": int64(1), "dt": int64(Double),
		"f": float32(0.5), "f32": float32(1.25),
		"s": "text", "ints": []int64{1, -2, 3}, "ints32": []int64{4}, "floats": []float32{0.5, 2},
		"strings": []string{"a", "b"}, "t": Int64Tensor([]int64{2}, []int64{5, 6}),
	}
	if !reflect.DeepEqual(custom.Attrs, want) {
		t.Errorf("attributes\n got %#v\nwant %#v", custom.Attrs, want)
	}
	sub, ok := iff.Attrs["then_branch"].(*Graph)
	if !ok || len(sub.Outputs) != 1 || sub.Outputs[0].Name != "x" {
		t.Fatalf("subgraph %#v", iff.Attrs["then_branch"])
	}
	// Re-encoding the decoded graph gives the same bytes.
	b2, err := mg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("re-encoded model differs (%d vs %d bytes)", len(b2), len(b))
	}
}

func TestMarshalErrors(t *testing.T) {
	g := NewGraph("bad")
	g.Output("y", g.Node("X", "", []*Value{g.Input("x", Float, D(1))}, Attrs{"bad": struct{}{}}, OutSpec{Float, Dims(1)})[0])
	if _, err := g.Marshal(); err == nil || !strings.Contains(err.Error(), `attribute "bad"`) {
		t.Errorf("unsupported attribute: err = %v", err)
	}
	g = NewGraph("bad")
	g.Initializer("w", &Tensor{DType: Float, Dims: []int64{3}, Raw: make([]byte, 8)})
	if _, err := g.Marshal(); err == nil || !strings.Contains(err.Error(), `initializer "w"`) {
		t.Errorf("short initializer: err = %v", err)
	}
	// Over 2 GiB: the data is never read, only its length counts.
	g = NewGraph("huge")
	small := make([]byte, 8)
	n := int64(1)<<31 + 8
	g.Initializer("w", &Tensor{DType: Float, Dims: []int64{n / 4}, Raw: unsafe.Slice(&small[0], n)})
	if _, err := g.Marshal(); err == nil || !strings.Contains(err.Error(), "2 GiB") {
		t.Errorf("huge model: err = %v", err)
	}
}

// tensorModel wraps one hand-encoded TensorProto as a model's initializer.
func tensorModel(t *enc) []byte {
	g := &enc{}
	g.msg(fGraphInitializer, t)
	g.string(fGraphName, "typed")
	m := &enc{}
	m.int64(fModelIRVersion, 7)
	m.msg(fModelGraph, g)
	return m.bytesOut()
}

func TestDecodeTypedFields(t *testing.T) {
	cases := []struct {
		dt   DType
		fill func(e *enc)
		want []byte
	}{
		{Float, func(e *enc) { e.packedFloats(fTensorFloats, []float32{1.5, -2}) }, FloatTensor([]int64{2}, []float32{1.5, -2}).Raw},
		{Float, func(e *enc) { e.float32(fTensorFloats, 1.5); e.float32(fTensorFloats, -2) }, FloatTensor([]int64{2}, []float32{1.5, -2}).Raw},
		{Int64, func(e *enc) { e.packedInt64s(fTensorInt64s, []int64{-1, 1 << 40}) }, Int64Tensor([]int64{2}, []int64{-1, 1 << 40}).Raw},
		{Int32, func(e *enc) { e.packedInt64s(fTensorInt32s, []int64{-3, 4}) }, []byte{0xfd, 0xff, 0xff, 0xff, 4, 0, 0, 0}},
		{Bool, func(e *enc) { e.packedInt64s(fTensorInt32s, []int64{1, 0}) }, []byte{1, 0}},
		{Float16, func(e *enc) { e.packedInt64s(fTensorInt32s, []int64{0x3c00, 0xc000}) }, []byte{0x00, 0x3c, 0x00, 0xc0}},
		{Double, func(e *enc) {
			b := DoubleTensor([]int64{2}, []float64{0.1, -3}).Raw
			e.bytes(fTensorDouble, b)
		}, DoubleTensor([]int64{2}, []float64{0.1, -3}).Raw},
	}
	for _, c := range cases {
		e := &enc{}
		e.packedInt64s(fTensorDims, []int64{2})
		e.int64(fTensorDType, int64(c.dt))
		e.string(fTensorName, "t")
		c.fill(e)
		m, err := Decode(tensorModel(e), LoadOptions{})
		if err != nil {
			t.Errorf("%s: %v", c.dt, err)
			continue
		}
		if got := m.Graph.Initializers[0].Init.Raw; !bytes.Equal(got, c.want) {
			t.Errorf("%s: raw %v, want %v", c.dt, got, c.want)
		}
	}
	// Too few typed values.
	e := &enc{}
	e.packedInt64s(fTensorDims, []int64{3})
	e.int64(fTensorDType, int64(Int64))
	e.packedInt64s(fTensorInt64s, []int64{1, 2})
	if _, err := Decode(tensorModel(e), LoadOptions{}); err == nil || !errors.Is(err, ErrCorrupt) {
		t.Errorf("short int64_data: err = %v", err)
	}
}

// TestDecodeCorrupt cuts a valid model at every length and flips bytes:
// always an error (or, rarely, a still-valid model), never a panic.
func TestDecodeCorrupt(t *testing.T) {
	b, err := sampleGraph().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n += 1 + n/50 {
		if _, err := Decode(b[:n], LoadOptions{}); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
		}
	}
	c := slices.Clone(b)
	for i := 0; i < len(c); i += 7 {
		c[i] ^= 0xa5
		Decode(c, LoadOptions{}) // must not panic
		c[i] ^= 0xa5
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.onnx")
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated file: err = %v, want ErrCorrupt naming %s", err, path)
	}
	if _, err := Load(filepath.Join(dir, "missing.onnx")); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := Decode([]byte("not a model at all"), LoadOptions{}); err == nil {
		t.Error("text: no error")
	}
}

func FuzzDecode(f *testing.F) {
	b, err := sampleGraph().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/3])
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x0a, 0x3a, 0x05, 0x2a, 0x03, 0x08, 0xff})
	e := &enc{}
	e.packedInt64s(fTensorDims, []int64{1 << 40, 1 << 40})
	e.int64(fTensorDType, int64(Float))
	f.Add(tensorModel(e))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, LoadOptions{})
		if err != nil {
			return
		}
		// Whatever decodes re-encodes.
		if _, err := m.Graph.Marshal(); err != nil && !strings.Contains(err.Error(), "attribute") && !strings.Contains(err.Error(), "initializer") {
			t.Logf("re-encode: %v", err)
		}
	})
}

func TestSaveExternalData(t *testing.T) {
	g := sampleGraph()
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := g.Save(path, SaveOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 4*512*4 {
		t.Errorf("data file is %d bytes, want %d", st.Size(), 4*512*4)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range g.Initializers {
		if !bytes.Equal(m.Graph.Initializers[i].Init.Raw, v.Init.Raw) {
			t.Errorf("initializer %s differs after external save", v.Name)
		}
	}
	info, err := LoadWith(path, LoadOptions{SkipData: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Graph.Initializers[0].Init.Raw != nil {
		t.Error("SkipData read external data")
	}
	// Automatic: a small threshold moves weights out; saving inline again
	// removes the stale data file; no temporary files remain.
	if err := g.Save(path, SaveOptions{ExternalThreshold: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".data"); err != nil {
		t.Errorf("threshold did not trigger external data: %v", err)
	}
	if err := g.Save(path, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".data"); !os.IsNotExist(err) {
		t.Errorf("stale data file: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v", names)
	}
	// External data that is missing or too short is an error naming it.
	if err := g.Save(path, SaveOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path+".data", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "model.onnx.data") {
		t.Errorf("short data file: err = %v", err)
	}
}

func TestExternalDataAlignment(t *testing.T) {
	g := NewGraph("align")
	for _, n := range []int64{300, 20000, 5} {
		g.Initializer("w"+string(rune('a'+len(g.Initializers))), FloatTensor([]int64{n}, make([]float32, n)))
	}
	refs := map[string]externalRef{}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := g.Save(path, SaveOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Read the external_data entries back.
	m := msg{buf: b, end: int64(len(b))}
	for m.more() {
		f, _ := m.next()
		if f.num != fModelGraph {
			continue
		}
		gm := f.sub
		for gm.more() {
			f, _ := gm.next()
			if f.num != fGraphInitializer {
				continue
			}
			tm := f.sub
			var name string
			var ref externalRef
			for tm.more() {
				f, _ := tm.next()
				switch f.num {
				case fTensorName:
					name, _ = f.string()
				case fTensorExt:
					k, v, _ := entry(f)
					switch k {
					case "location":
						ref.location = v
					case "offset":
						ref.offset = mustAtoi(t, v)
					case "length":
						ref.length = mustAtoi(t, v)
					}
				}
			}
			refs[name] = ref
		}
	}
	want := map[string]externalRef{
		"wa": {"m.onnx.data", 0, 1200},
		"wb": {"m.onnx.data", 4096, 80000},
	}
	if !reflect.DeepEqual(refs, map[string]externalRef{"wa": refs["wa"], "wb": refs["wb"], "wc": {}}) || refs["wa"] != want["wa"] || refs["wb"] != want["wb"] {
		t.Errorf("external refs %v, want %v and wc inline", refs, want)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// TestDecodeMutations decodes thousands of randomly corrupted copies of a
// model (a deterministic complement to FuzzDecode): no panics, and anything
// that decodes re-encodes.
func TestDecodeMutations(t *testing.T) {
	b, err := sampleGraph().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		c := slices.Clone(b)
		for k := 0; k < 1+r.IntN(4); k++ {
			c[r.IntN(len(c))] = byte(r.IntN(256))
		}
		if r.IntN(3) == 0 {
			c = c[:r.IntN(len(c))]
		}
		if m, err := Decode(c, LoadOptions{}); err == nil {
			m.Graph.Marshal()
		}
	}
}
