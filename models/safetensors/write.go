package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/igsearch/igsearch/atomicfile"
)

// Tensor is one tensor to write: its bytes are little-endian, row-major.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// Float32Tensor wraps float32 data as an F32 tensor (the bytes are copied).
func Float32Tensor(name string, shape []int64, data []float32) Tensor {
	raw := make([]byte, 4*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int64{}, shape...), Data: raw}
}

// Encode writes tensors in safetensors layout to w, in name order, with
// metadata as __metadata__ (omitted when empty). The header is padded with
// spaces so that the data buffer starts 8-byte aligned.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := make(map[string]any, len(sorted)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	off := int64(0)
	for i, t := range sorted {
		if t.Name == "__metadata__" || t.Name == "" {
			return fmt.Errorf("tensor %d: invalid name %q", i, t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("tensor %q: duplicate name", t.Name)
		}
		info := Info{Name: t.Name, DType: t.DType, Shape: t.Shape}
		if t.DType.Size() == 0 {
			return fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
		}
		if want := info.NumElements() * int64(t.DType.Size()); want != int64(len(t.Data)) {
			return fmt.Errorf("tensor %q: %s%v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[t.Name] = rawEntry{DType: t.DType, Shape: shape, DataOffsets: []int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	js, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	for _, t := range sorted {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// Write writes a safetensors file atomically: to a temporary file in the same
// directory, synced, then renamed over path.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	return writeAtomic(path, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}

// writeAtomic runs fill on a buffered temporary file beside path and renames
// it into place only if everything succeeded.
func writeAtomic(path string, fill func(io.Writer) error) error {
	if err := atomicfile.Write(path, fill); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
