package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// Tensor is constant tensor data: an initializer, a Constant, or an attribute.
// Raw holds the elements little-endian in row-major order; it may alias memory
// the caller owns (a memory-mapped checkpoint), so treat it as read-only.
type Tensor struct {
	DType DType
	Dims  []int64
	Raw   []byte
}

// NumElements is the product of the dims (1 for a scalar).
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Validate checks that Raw has exactly the bytes the dtype and dims need.
func (t *Tensor) Validate() error {
	if t.DType.Size() == 0 {
		return fmt.Errorf("unsupported dtype %s", t.DType)
	}
	if want := t.NumElements() * int64(t.DType.Size()); int64(len(t.Raw)) != want {
		return fmt.Errorf("%s%v needs %d bytes, has %d", t.DType, t.Dims, want, len(t.Raw))
	}
	return nil
}

// FloatTensor copies data into a float32 tensor of the given dims.
func FloatTensor(dims []int64, data []float32) *Tensor {
	checkLen(dims, len(data))
	raw := make([]byte, 4*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return &Tensor{DType: Float, Dims: append([]int64{}, dims...), Raw: raw}
}

// DoubleTensor copies data into a float64 tensor of the given dims.
func DoubleTensor(dims []int64, data []float64) *Tensor {
	checkLen(dims, len(data))
	raw := make([]byte, 8*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(f))
	}
	return &Tensor{DType: Double, Dims: append([]int64{}, dims...), Raw: raw}
}

// Int64Tensor copies data into an int64 tensor of the given dims.
func Int64Tensor(dims []int64, data []int64) *Tensor {
	checkLen(dims, len(data))
	raw := make([]byte, 8*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return &Tensor{DType: Int64, Dims: append([]int64{}, dims...), Raw: raw}
}

// BoolTensor copies data into a bool tensor of the given dims.
func BoolTensor(dims []int64, data []bool) *Tensor {
	checkLen(dims, len(data))
	raw := make([]byte, len(data))
	for i, b := range data {
		if b {
			raw[i] = 1
		}
	}
	return &Tensor{DType: Bool, Dims: append([]int64{}, dims...), Raw: raw}
}

// ScalarTensor is a rank-0 tensor of dtype dt holding x (float types and
// integer types; x is converted).
func ScalarTensor(dt DType, x float64) *Tensor {
	switch dt {
	case Float:
		return FloatTensor(nil, []float32{float32(x)})
	case Double:
		return DoubleTensor(nil, []float64{x})
	case Int64:
		return Int64Tensor(nil, []int64{int64(x)})
	case Float16:
		raw := make([]byte, 2)
		binary.LittleEndian.PutUint16(raw, Float32ToFloat16(float32(x)))
		return &Tensor{DType: Float16, Raw: raw}
	}
	panic(fmt.Sprintf("onnx: ScalarTensor: unsupported dtype %s", dt))
}

func checkLen(dims []int64, n int) {
	want := int64(1)
	for _, d := range dims {
		want *= d
	}
	if want != int64(n) {
		panic(fmt.Sprintf("onnx: tensor dims %v need %d elements, got %d", dims, want, n))
	}
}

// Floats returns the elements of a float32 tensor as a new slice.
func (t *Tensor) Floats() []float32 {
	if t.DType != Float {
		panic(fmt.Sprintf("onnx: Floats on a %s tensor", t.DType))
	}
	out := make([]float32, len(t.Raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[4*i:]))
	}
	return out
}

// Int64s returns the elements of an int64 tensor as a new slice.
func (t *Tensor) Int64s() []int64 {
	if t.DType != Int64 {
		panic(fmt.Sprintf("onnx: Int64s on a %s tensor", t.DType))
	}
	out := make([]int64, len(t.Raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Raw[8*i:]))
	}
	return out
}

// FloatView reinterprets float32 data without copying (little-endian hosts
// only, which is every platform ONNX Runtime ships for).
func FloatView(raw []byte) []float32 {
	if len(raw) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), len(raw)/4)
}

// FloatBytes reinterprets a float32 slice as bytes without copying.
func FloatBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// Float32ToFloat16 converts with round-to-nearest-even.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff == 0:
		return sign
	case int32(b>>23&0xff) == 0xff: // inf or nan
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// Float16ToFloat32 converts exactly.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		for mant&0x400 == 0 {
			mant <<= 1
			exp--
		}
		exp++
		mant &= 0x3ff
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BFloat16ToFloat32 converts exactly.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
