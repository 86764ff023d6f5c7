package qwen2

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
)

// WeightSizes is the byte size of each of Params(cfg) in dtype dt, in the
// same order.
func WeightSizes(cfg Config, dt onnx.DType) []int64 {
	ps := Params(cfg)
	sizes := make([]int64, len(ps))
	for i, p := range ps {
		n := int64(dt.Size())
		for _, d := range p.Shape {
			n *= d
		}
		sizes[i] = n
	}
	return sizes
}

// LoadWeightsInto reads dir's weights (model.safetensors, or shards with
// model.safetensors.index.json) into memory that alloc hands out, one call
// per tensor in Params order, converting them to dt (onnx.Float or
// onnx.Float16) on the way: a bf16 checkpoint becomes fp32 without a whole
// fp32 copy in between. The files are closed before it returns, so the
// weights are held once, in alloc's memory. lm_head.weight is skipped when
// the embeddings are tied.
func LoadWeightsInto(dir string, cfg Config, dt onnx.DType, alloc func(n int) ([]byte, error)) (Weights, error) {
	if dt != onnx.Float && dt != onnx.Float16 {
		return nil, fmt.Errorf("qwen2 %s: weights dtype must be float32 or float16, not %s", dir, dt)
	}
	files, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("qwen2 %s: %w", dir, err)
	}
	defer files.Close()
	w := Weights{}
	for _, p := range Params(cfg) {
		info, raw, err := files.Raw(p.Name)
		if err != nil {
			return nil, fmt.Errorf("qwen2 %s: missing tensor %q (shape %v)", dir, p.Name, p.Shape)
		}
		advise(raw, unix.MADV_WILLNEED) // read ahead instead of faulting page by page
		if !sameShape(info.Shape, p.Shape) {
			return nil, fmt.Errorf("qwen2 %s: tensor %q has shape %v, want %v", dir, p.Name, info.Shape, p.Shape)
		}
		n := info.NumElements()
		dst, err := alloc(int(n) * dt.Size())
		if err != nil {
			return nil, fmt.Errorf("qwen2 %s: tensor %q: %w", dir, p.Name, err)
		}
		if err := convertInto(dst, dt, info.DType, raw); err != nil {
			return nil, fmt.Errorf("qwen2 %s: tensor %q: %w", dir, p.Name, err)
		}
		advise(raw, unix.MADV_DONTNEED)
		w[p.Name] = &onnx.Tensor{DType: dt, Dims: p.Shape, Raw: dst}
	}
	return w, nil
}

// advise passes advice on the mapped file pages wholly inside b: WILLNEED
// before a tensor is converted, and DONTNEED after, so that a checkpoint
// being converted does not count against the process's memory on top of its
// converted copy (a 3B bf16 checkpoint is 6 GB). The mapping is read-only
// and file-backed: pages read again come back from the file.
func advise(b []byte, advice int) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	lo := (start + page - 1) &^ (page - 1)
	hi := (start + uintptr(len(b))) &^ (page - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo-start:hi-start], advice)
}

// convertInto writes raw's elements (safetensors dtype src) into dst as dt.
func convertInto(dst []byte, dt onnx.DType, src safetensors.DType, raw []byte) error {
	if s := src.Size(); s == 0 || len(raw)%s != 0 || len(dst)/dt.Size() != len(raw)/s {
		return fmt.Errorf("%d bytes of %s do not make %d bytes of %s", len(raw), src, len(dst), dt)
	}
	switch {
	case dt == onnx.Float && src == safetensors.F32, dt == onnx.Float16 && src == safetensors.F16:
		copy(dst, raw)
		return nil
	case dt == onnx.Float && src == safetensors.BF16:
		// bf16 is the top half of a float32. Word views (the target is
		// little-endian, as safetensors is) keep this loop at memory speed.
		n := len(raw) / 2
		if n == 0 {
			return nil
		}
		in := unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), n)
		out := unsafe.Slice((*uint32)(unsafe.Pointer(&dst[0])), n)
		for i, h := range in {
			out[i] = uint32(h) << 16
		}
		return nil
	}
	// The rarer pairs go through float32, in chunks to bound the scratch.
	const chunk = 1 << 16
	size := src.Size()
	for start := 0; start < len(raw); start += chunk * size {
		end := min(len(raw), start+chunk*size)
		f, err := safetensors.ToFloat32(src, raw[start:end])
		if err != nil {
			return err
		}
		at := start / size
		for i, x := range f {
			if dt == onnx.Float {
				binary.LittleEndian.PutUint32(dst[4*(at+i):], math.Float32bits(x))
			} else {
				binary.LittleEndian.PutUint16(dst[2*(at+i):], onnx.Float32ToFloat16(x))
			}
		}
	}
	return nil
}
