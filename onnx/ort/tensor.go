package ort

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/igsearch/igsearch/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Elem is the Go element types a Tensor can be built from and read into.
// float16 and bfloat16 travel as their bit patterns (uint16) through
// NewFloat16Tensor, FromONNX and Float16s.
type Elem interface {
	float32 | float64 | int64 | int32 | int8 | uint8 | bool
}

// dtypeOf maps a Go element type to its ONNX dtype.
func dtypeOf[T Elem]() onnx.DType {
	var z T
	switch any(z).(type) {
	case float32:
		return onnx.Float
	case float64:
		return onnx.Double
	case int64:
		return onnx.Int64
	case int32:
		return onnx.Int32
	case int8:
		return onnx.Int8
	case uint8:
		return onnx.Uint8
	case bool:
		return onnx.Bool
	}
	panic("unreachable")
}

// Tensor is a tensor handed to or returned by a Session. It is opaque: build
// one with NewTensor, NewFloat16Tensor or FromONNX (over Go memory), or with
// Session.Alloc or Session.Upload (ORT-owned, on the session's device), and
// read one with Values, Float16s, Bytes or ToONNX, which copy (and, for an
// ORT-owned tensor, count as crossing the boundary: see MeteredTransfers).
//
// A Tensor holds ONNX Runtime memory: call Destroy when done. It is safe to
// read from several goroutines, but not to Destroy while in use.
type Tensor struct {
	dtype onnx.DType
	shape []int64
	value ortgo.Value // a tensor over Go memory
	owned *ortValue   // or an ORT-owned one
}

// NewTensor makes a tensor of the given shape over data, which it uses in
// place (no copy): do not modify data while the tensor is in use. A rank-0
// shape (nil or empty) makes a scalar from data[0].
func NewTensor[T Elem](shape []int64, data []T) (*Tensor, error) {
	if err := ready(); err != nil {
		return nil, err
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("ort: tensor %v needs %d elements, got %d", shape, n, len(data))
	}
	t := &Tensor{dtype: dtypeOf[T](), shape: slices.Clone(shape)}
	if len(shape) == 0 {
		s, err := ortgo.NewScalar(data[0])
		if err != nil {
			return nil, fmt.Errorf("ort: scalar %s: %w", t.dtype, err)
		}
		t.value = s
		return t, nil
	}
	v, err := ortgo.NewTensor(ortgo.NewShape(shape...), data)
	if err != nil {
		return nil, fmt.Errorf("ort: tensor %s%v: %w", t.dtype, shape, err)
	}
	t.value = v
	return t, nil
}

// NewFloat16Tensor makes a float16 tensor from IEEE half-precision bit
// patterns (see onnx.Float32ToFloat16), used in place.
func NewFloat16Tensor(shape []int64, bits []uint16) (*Tensor, error) {
	var raw []byte
	if len(bits) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&bits[0])), 2*len(bits))
	}
	return newRaw(onnx.Float16, shape, raw)
}

// FromONNX makes a tensor over an IR tensor's little-endian data (any dtype
// with a fixed element size, float16 and bfloat16 included), used in place.
func FromONNX(t *onnx.Tensor) (*Tensor, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("ort: tensor: %w", err)
	}
	return newRaw(t.DType, t.Dims, t.Raw)
}

func newRaw(dt onnx.DType, shape []int64, raw []byte) (*Tensor, error) {
	if err := ready(); err != nil {
		return nil, err
	}
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) != n*int64(dt.Size()) || dt.Size() == 0 {
		return nil, fmt.Errorf("ort: %s tensor %v needs %d bytes, got %d", dt, shape, n*int64(dt.Size()), len(raw))
	}
	if len(shape) == 0 {
		// onnxruntime_go builds rank-0 values only through its typed scalars.
		switch dt {
		case onnx.Float:
			return NewTensor(nil, slices.Clone(onnx.FloatView(raw)))
		case onnx.Double:
			return NewTensor(nil, unsafe.Slice((*float64)(unsafe.Pointer(&raw[0])), 1))
		case onnx.Int64:
			return NewTensor(nil, unsafe.Slice((*int64)(unsafe.Pointer(&raw[0])), 1))
		case onnx.Int32:
			return NewTensor(nil, unsafe.Slice((*int32)(unsafe.Pointer(&raw[0])), 1))
		case onnx.Bool:
			return NewTensor(nil, []bool{raw[0] != 0})
		case onnx.Uint8:
			return NewTensor(nil, []uint8{raw[0]})
		case onnx.Int8:
			return NewTensor(nil, []int8{int8(raw[0])})
		}
		return nil, fmt.Errorf("ort: rank-0 %s tensors are not supported; use shape [1]", dt)
	}
	if n == 0 {
		// ONNX Runtime accepts no data for an empty tensor, onnxruntime_go's
		// raw tensors do not: use a typed empty tensor where there is one.
		switch dt {
		case onnx.Float:
			return NewTensor(shape, []float32{})
		case onnx.Double:
			return NewTensor(shape, []float64{})
		case onnx.Int64:
			return NewTensor(shape, []int64{})
		case onnx.Int32:
			return NewTensor(shape, []int32{})
		case onnx.Bool:
			return NewTensor(shape, []bool{})
		}
		// Other types go through a raw tensor, which wants at least one
		// byte: ONNX Runtime only checks that the buffer is large enough.
		raw = make([]byte, max(dt.Size(), 1))
	}
	v, err := ortgo.NewCustomDataTensor(ortgo.NewShape(shape...), raw, ortgo.TensorElementDataType(dt))
	if err != nil {
		return nil, fmt.Errorf("ort: tensor %s%v: %w", dt, shape, err)
	}
	return &Tensor{dtype: dt, shape: slices.Clone(shape), value: v}, nil
}

func numElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("ort: negative dimension in shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// wrap adopts a value returned by onnxruntime_go.
func wrap(v ortgo.Value) (*Tensor, error) {
	if v.GetONNXType() != ortgo.ONNXTypeTensor {
		v.Destroy()
		return nil, fmt.Errorf("ort: output is a %s, not a tensor", v.GetONNXType())
	}
	return &Tensor{dtype: onnx.DType(v.DataType()), shape: slices.Clone([]int64(v.GetShape())), value: v}, nil
}

// DType is the element type.
func (t *Tensor) DType() onnx.DType { return t.dtype }

// Shape is the tensor's shape (do not modify it); empty for a scalar.
func (t *Tensor) Shape() []int64 { return t.shape }

// NumElements is the product of the shape.
func (t *Tensor) NumElements() int64 {
	n, _ := numElements(t.shape)
	return n
}

// Destroy releases the tensor's ONNX Runtime memory. Calling it twice, or on
// nil, is harmless.
func (t *Tensor) Destroy() {
	if t == nil {
		return
	}
	if t.owned != nil {
		t.owned.release()
		return
	}
	if t.value == nil {
		return
	}
	t.value.Destroy()
	t.value = nil
}

// hostBytes is a view of the tensor's host memory (not a copy).
func (t *Tensor) hostBytes() ([]byte, error) {
	if t.owned != nil {
		return t.owned.read(t, t.owned.phase)
	}
	if t.value == nil {
		return nil, fmt.Errorf("ort: tensor used after Destroy")
	}
	size := int(t.NumElements()) * t.dtype.Size()
	if size == 0 {
		return nil, nil
	}
	switch v := t.value.(type) {
	case *ortgo.CustomDataTensor:
		return v.GetData()[:size], nil
	case *ortgo.Tensor[float32]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[float64]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[int64]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[int32]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[int8]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[uint8]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[bool]:
		return view(v.GetData(), size), nil
	case *ortgo.Tensor[uint16]:
		return view(v.GetData(), size), nil
	case *ortgo.Scalar[float32]:
		x := v.GetData()
		return slices.Clone(view([]float32{x}, 4)), nil
	case *ortgo.Scalar[float64]:
		return view([]float64{v.GetData()}, 8), nil
	case *ortgo.Scalar[int64]:
		return view([]int64{v.GetData()}, 8), nil
	case *ortgo.Scalar[int32]:
		return view([]int32{v.GetData()}, 4), nil
	case *ortgo.Scalar[int8]:
		return view([]int8{v.GetData()}, 1), nil
	case *ortgo.Scalar[uint8]:
		return []byte{v.GetData()}, nil
	case *ortgo.Scalar[bool]:
		return view([]bool{v.GetData()}, 1), nil
	}
	return nil, fmt.Errorf("ort: unsupported tensor value %T", t.value)
}

func view[T any](s []T, size int) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), size)
}

// Values copies the elements out of t; T must match its dtype.
func Values[T Elem](t *Tensor) ([]T, error) {
	if want := dtypeOf[T](); t.dtype != want {
		return nil, fmt.Errorf("ort: reading a %s tensor as %s", t.dtype, want)
	}
	raw, err := t.hostBytes()
	if err != nil {
		return nil, err
	}
	out := make([]T, t.NumElements())
	if len(out) > 0 {
		copy(view(out, len(raw)), raw)
	}
	return out, nil
}

// Float16s copies the bit patterns out of a float16 or bfloat16 tensor.
func (t *Tensor) Float16s() ([]uint16, error) {
	if t.dtype != onnx.Float16 && t.dtype != onnx.BFloat16 {
		return nil, fmt.Errorf("ort: reading a %s tensor as float16", t.dtype)
	}
	raw, err := t.hostBytes()
	if err != nil {
		return nil, err
	}
	out := make([]uint16, t.NumElements())
	if len(out) > 0 {
		copy(view(out, len(raw)), raw)
	}
	return out, nil
}

// Bytes copies the tensor's little-endian element data.
func (t *Tensor) Bytes() ([]byte, error) {
	raw, err := t.hostBytes()
	if err != nil {
		return nil, err
	}
	return slices.Clone(raw), nil
}

// ToONNX copies t into an IR tensor.
func (t *Tensor) ToONNX() (*onnx.Tensor, error) {
	raw, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	if raw == nil {
		raw = []byte{}
	}
	return &onnx.Tensor{DType: t.dtype, Dims: slices.Clone(t.shape), Raw: raw}, nil
}

// String describes the tensor as dtype[shape].
func (t *Tensor) String() string { return fmt.Sprintf("%s%v", t.dtype, t.shape) }
