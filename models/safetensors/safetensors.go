// Package safetensors reads and writes the Hugging Face safetensors format,
// memory-mapping files so that large checkpoints cost no copy to open.
//
// # Format
//
// A file is
//
//	offset 0   u64 little-endian N: the byte length of the JSON header
//	offset 8   N bytes of UTF-8 JSON, padded with spaces (this package pads to
//	           a multiple of 8 so that the data starts 8-byte aligned, as HF does)
//	offset 8+N the data buffer: every tensor's bytes, little-endian, row-major
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]}, offsets relative to the data buffer; the optional
// "__metadata__" key maps strings to strings. A sharded checkpoint adds
// model.safetensors.index.json, whose "weight_map" maps each tensor name to
// the file that holds it (see OpenCheckpoint).
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DType is a safetensors element type name, as written in the header.
type DType string

// The element types this package knows; others are rejected at open time.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the element size in bytes, 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// maxHeader bounds the JSON header, as the reference implementation does.
const maxHeader = 100 << 20

// Info describes one tensor of a file: its dtype, its shape, and where its
// bytes lie in the data buffer.
type Info struct {
	Name       string
	DType      DType
	Shape      []int64
	Begin, End int64 // byte offsets into the data buffer, End exclusive
}

// NumElements is the product of the shape (1 for a scalar).
func (i Info) NumElements() int64 {
	n := int64(1)
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// Header is a parsed, validated header.
type Header struct {
	Tensors  []Info // sorted by Begin
	Metadata map[string]string
	// DataStart is the file offset of the data buffer (8 + header length).
	DataStart int64
}

type rawEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ParseHeader parses and validates a header given the file's first bytes
// (at least 8 + N of them) and the total file size. It checks the header
// length, the dtypes, that shape × dtype size equals each byte range, and
// that ranges neither overlap nor leave the file; a tensor that runs past the
// end of the file is reported as truncation, by name.
func ParseHeader(prefix []byte, fileSize int64) (*Header, error) {
	if len(prefix) < 8 || fileSize < 8 {
		return nil, fmt.Errorf("file too short for a safetensors header (%d bytes)", fileSize)
	}
	n := binary.LittleEndian.Uint64(prefix)
	if n > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit (not a safetensors file?)", n, maxHeader)
	}
	if int64(n) > fileSize-8 {
		return nil, fmt.Errorf("header length %d runs past the end of the %d-byte file (truncated?)", n, fileSize)
	}
	if uint64(len(prefix)) < 8+n {
		return nil, fmt.Errorf("header length %d: only %d bytes given", n, len(prefix)-8)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(prefix[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("header JSON: %w", err)
	}
	h := &Header{DataStart: 8 + int64(n)}
	dataLen := fileSize - h.DataStart
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &h.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__: %w", err)
			}
			continue
		}
		var e rawEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		size := e.DType.Size()
		if size == 0 {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", name, e.DType)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets must have 2 entries, has %d", name, len(e.DataOffsets))
		}
		info := Info{Name: name, DType: e.DType, Shape: e.Shape, Begin: e.DataOffsets[0], End: e.DataOffsets[1]}
		if info.Shape == nil {
			info.Shape = []int64{}
		}
		want := int64(size)
		for _, d := range info.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", name, info.Shape)
			}
			if d != 0 && want > math.MaxInt64/d {
				return nil, fmt.Errorf("tensor %q: shape %v overflows", name, info.Shape)
			}
			want *= d
		}
		if info.Begin < 0 || info.End < info.Begin {
			return nil, fmt.Errorf("tensor %q: bad data_offsets [%d, %d]", name, info.Begin, info.End)
		}
		if info.End-info.Begin != want {
			return nil, fmt.Errorf("tensor %q: %s%v needs %d bytes, data_offsets [%d, %d] give %d",
				name, info.DType, info.Shape, want, info.Begin, info.End, info.End-info.Begin)
		}
		if info.End > dataLen {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the %d-byte data buffer (file truncated?)",
				name, info.Begin, info.End, dataLen)
		}
		h.Tensors = append(h.Tensors, info)
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.Name < b.Name
	})
	for i := 1; i < len(h.Tensors); i++ {
		prev, cur := h.Tensors[i-1], h.Tensors[i]
		if cur.Begin < prev.End {
			return nil, fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap",
				prev.Name, prev.Begin, prev.End, cur.Name, cur.Begin, cur.End)
		}
	}
	return h, nil
}

// File is an open, memory-mapped safetensors file. Slices it returns alias
// the mapping and are valid until Close; the mapping is read-only.
type File struct {
	path   string
	data   []byte // the whole file, mapped
	header *Header
	byName map[string]int
}

// Open maps path and validates its header. Errors name the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file too short for a header (%d bytes; truncated?)", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: mmap: %w", path, err)
	}
	h, err := ParseHeader(data, size)
	if err != nil {
		unix.Munmap(data)
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	sf := &File{path: path, data: data, header: h, byName: make(map[string]int, len(h.Tensors))}
	for i, t := range h.Tensors {
		sf.byName[t.Name] = i
	}
	return sf, nil
}

// Close unmaps the file; slices from Raw become invalid.
func (f *File) Close() error {
	if f.data == nil {
		return nil
	}
	err := unix.Munmap(f.data)
	f.data = nil
	if err != nil {
		return fmt.Errorf("safetensors %s: munmap: %w", f.path, err)
	}
	return nil
}

// Path is the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Metadata is the header's __metadata__ map (nil if absent).
func (f *File) Metadata() map[string]string { return f.header.Metadata }

// Tensors lists every tensor in file order.
func (f *File) Tensors() []Info { return f.header.Tensors }

// Info describes the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Info{}, false
	}
	return f.header.Tensors[i], true
}

// Raw returns the named tensor's bytes, aliasing the mapping (read-only,
// valid until Close).
func (f *File) Raw(name string) (Info, []byte, error) {
	info, ok := f.Info(name)
	if !ok {
		return Info{}, nil, fmt.Errorf("safetensors %s: no tensor %q", f.path, name)
	}
	start := f.header.DataStart
	return info, f.data[start+info.Begin : start+info.End : start+info.End], nil
}

// Float32s returns the named tensor converted to float32 (F32, F16, BF16, F64,
// and the integer types). For F32 the slice aliases the mapping when it is
// 4-byte aligned and must not be written; otherwise it is a fresh copy.
func (f *File) Float32s(name string) (Info, []float32, error) {
	info, raw, err := f.Raw(name)
	if err != nil {
		return info, nil, err
	}
	out, err := ToFloat32(info.DType, raw)
	if err != nil {
		return info, nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.path, name, err)
	}
	return info, out, nil
}

// ToFloat32 converts little-endian elements of dtype dt to float32. F32 input
// that is 4-byte aligned is returned as a view of raw, not a copy.
func ToFloat32(dt DType, raw []byte) ([]float32, error) {
	n := 0
	if s := dt.Size(); s > 0 {
		n = len(raw) / s
	}
	switch dt {
	case F32:
		if len(raw) > 0 && uintptr(unsafe.Pointer(&raw[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n), nil
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case BF16:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
		return out, nil
	case F16:
		out := make([]float32, n)
		for i := range out {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	case F64:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
		return out, nil
	case I64:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(int64(binary.LittleEndian.Uint64(raw[8*i:])))
		}
		return out, nil
	case I32:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert %s to float32", dt)
}

// f16ToF32 converts an IEEE half exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := int32(1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | uint32(e+127-15)<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
