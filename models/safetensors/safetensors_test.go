package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() []Tensor {
	bf := []byte{0x80, 0x3f, 0x00, 0xc0}              // bf16 1, -2
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00} // f16 1, -2, smallest subnormal
	i64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(i64, 7)
	binary.LittleEndian.PutUint64(i64[8:], ^uint64(2)) // -3
	return []Tensor{
		Float32Tensor("a.weight", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		{Name: "b.bf16", DType: BF16, Shape: []int64{2}, Data: bf},
		{Name: "c.f16", DType: F16, Shape: []int64{3}, Data: f16},
		{Name: "d.i64", DType: I64, Shape: []int64{2}, Data: i64},
		Float32Tensor("e.scalar", nil, []float32{0.5}),
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	meta := map[string]string{"format": "pt"}
	if err := Write(path, sample(), meta); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+n)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata())
	}
	want := map[string][]float32{
		"a.weight": {1, 2, 3, 4, 5, 6},
		"b.bf16":   {1, -2},
		"c.f16":    {1, -2, 5.960464477539063e-08},
		"d.i64":    {7, -3},
		"e.scalar": {0.5},
	}
	for name, w := range want {
		info, got, err := f.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(w) {
			t.Fatalf("%s: %v, want %v", name, got, w)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Errorf("%s[%d] = %g, want %g", name, i, got[i], w[i])
			}
		}
		if name == "a.weight" && (len(info.Shape) != 2 || info.Shape[1] != 3) {
			t.Errorf("a.weight shape %v", info.Shape)
		}
		if name == "e.scalar" && len(info.Shape) != 0 {
			t.Errorf("scalar shape %v", info.Shape)
		}
	}
	if _, _, err := f.Raw("missing"); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestTruncatedNamesFileAndTensor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	if err := Write(path, sample(), nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	// The last tensor in file order is "e.scalar"; cut into it.
	if err := os.WriteFile(path, raw[:len(raw)-2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"e.scalar"`) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated file: %v", err)
	}
	// Cut into the header.
	os.WriteFile(path, raw[:20], 0o644)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated header: %v", err)
	}
	os.WriteFile(path, raw[:3], 0o644)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("3-byte file: %v", err)
	}
}

func header(js string, data int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(js)))
	b.WriteString(js)
	b.Write(make([]byte, data))
	return b.Bytes()
}

func TestCorruptHeaders(t *testing.T) {
	cases := []struct{ js, want string }{
		{`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, "needs 8 bytes"},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, "overlap"},
		{`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}`, "unsupported dtype"},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, "bad data_offsets"},
		{`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, "negative"},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, "2 entries"},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, "unknown field"},
		{`{"a":`, "header JSON"},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, "truncated"},
		{`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}`, "overflows"},
	}
	for _, c := range cases {
		b := header(c.js, 8)
		_, err := ParseHeader(b, int64(len(b)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.js, err, c.want)
		}
	}
	huge := make([]byte, 16)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	if _, err := ParseHeader(huge, 16); err == nil {
		t.Error("huge header length accepted")
	}
}

func TestShardedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ts := sample()
	if err := WriteCheckpoint(dir, ts, map[string]string{"format": "pt"}, 16); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); err != nil {
		t.Fatalf("no index: %v", err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("shards %v", shards)
	}
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Names(), ","); got != "a.weight,b.bf16,c.f16,d.i64,e.scalar" {
		t.Errorf("names %s", got)
	}
	_, a, err := c.Float32s("a.weight")
	if err != nil || a[5] != 6 {
		t.Errorf("a.weight %v %v", a, err)
	}
	c.Close()

	// Single file replaces the shards' index.
	if err := WriteCheckpoint(dir, ts[:1], nil, 0); err != nil {
		t.Fatal(err)
	}
	c, err = OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Names()) != 1 {
		t.Errorf("names %v", c.Names())
	}
	c.Close()

	// An index naming a tensor its shard lacks.
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":{"zz":"model.safetensors"}}`), 0o644)
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("bad index: %v", err)
	}
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":{"zz":"../x.safetensors"}}`), 0o644)
	if _, err := OpenCheckpoint(dir); err == nil {
		t.Error("index escaping the directory accepted")
	}
}

func TestEncodeRejects(t *testing.T) {
	var b bytes.Buffer
	if err := Encode(&b, []Tensor{{Name: "x", DType: F32, Shape: []int64{3}, Data: make([]byte, 8)}}, nil); err == nil {
		t.Error("short data accepted")
	}
	if err := Encode(&b, []Tensor{Float32Tensor("x", nil, []float32{1}), Float32Tensor("x", nil, []float32{1})}, nil); err == nil {
		t.Error("duplicate accepted")
	}
}

func FuzzParseHeader(f *testing.F) {
	var b bytes.Buffer
	Encode(&b, sample(), map[string]string{"format": "pt"})
	f.Add(b.Bytes())
	f.Add(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, 8))
	f.Add(header(`{"__metadata__":{"a":"b"}}`, 0))
	f.Add(header(`{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}`, 2))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data, int64(len(data)))
		if err != nil {
			return
		}
		dataLen := int64(len(data)) - h.DataStart
		end := int64(0)
		for _, ti := range h.Tensors {
			if ti.Begin < end || ti.End > dataLen || ti.End-ti.Begin != ti.NumElements()*int64(ti.DType.Size()) {
				t.Fatalf("accepted bad tensor %+v (data %d)", ti, dataLen)
			}
			end = ti.End
		}
	})
}
