package trainer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"syscall"
	"unsafe"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// The trainer holds the model's float32 weights in one ort.HostWeights
// block (HostWeights), the memory that ONNX Runtime sessions take in place:
// a policy built with policy.Options.SharedWeights over the trainer's
// weights (rollouts, the LoRA base) then adds no second copy. The optimiser
// updates trainable weights in the block between such uses. Adapters and
// moments stay in Go memory.

// newHostParams maps a block for the model weights of cfg and returns a
// float32 view of each weight's place in it.
func newHostParams(cfg qwen2.Config) (*ort.HostWeights, map[string][]float32, error) {
	params := qwen2.Params(cfg)
	sizes := make([]int64, len(params))
	for i, p := range params {
		sizes[i] = 4 * numElements(p.Shape)
	}
	block, err := ort.NewHostWeights(ort.HostWeightSize(sizes))
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: %w", err)
	}
	views := map[string][]float32{}
	for i, p := range params {
		raw, err := block.Alloc(int(sizes[i]))
		if err != nil {
			block.Close()
			return nil, nil, fmt.Errorf("trainer: %w", err)
		}
		views[p.Name] = onnx.FloatView(raw)
	}
	return block, views, nil
}

// loadHostParams reads the Hugging Face checkpoint in dir into a new block,
// tensor by tensor, converting BF16/F16 to float32 on the way. Each source
// tensor's mapped pages are released once copied, so that loading never
// holds the file and the block at once.
func loadHostParams(dir string) (qwen2.Config, *ort.HostWeights, map[string][]float32, error) {
	cfg, err := qwen2.LoadConfig(dir)
	if err != nil {
		return cfg, nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, nil, fmt.Errorf("trainer %s: config: %w", dir, err)
	}
	files, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("trainer %s: %w", dir, err)
	}
	defer files.Close()
	block, views, err := newHostParams(cfg)
	if err != nil {
		return cfg, nil, nil, err
	}
	for _, p := range qwen2.Params(cfg) {
		info, raw, err := files.Raw(p.Name)
		if err != nil {
			block.Close()
			return cfg, nil, nil, fmt.Errorf("trainer %s: missing tensor %q (shape %v)", dir, p.Name, p.Shape)
		}
		if !sameShape(info.Shape, p.Shape) {
			block.Close()
			return cfg, nil, nil, fmt.Errorf("trainer %s: tensor %q has shape %v, want %v", dir, p.Name, info.Shape, p.Shape)
		}
		dst := views[p.Name]
		switch info.DType {
		case safetensors.F32:
			copy(onnx.FloatBytes(dst), raw)
		case safetensors.BF16:
			for i := range dst {
				dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
			}
		default:
			f, err := safetensors.ToFloat32(info.DType, raw)
			if err != nil {
				block.Close()
				return cfg, nil, nil, fmt.Errorf("trainer %s: tensor %q: %w", dir, p.Name, err)
			}
			copy(dst, f)
		}
		releasePages(raw)
	}
	return cfg, block, views, nil
}

// releasePages drops the whole pages of a read-only file mapping from the
// process (they stay in the page cache, and reading them again maps them
// back), so that copied weights do not count twice in its memory.
func releasePages(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	lo := uintptr(unsafe.Pointer(&b[0]))
	hi := lo + uintptr(len(b))
	start, end := (lo+page-1)/page*page, hi/page*page
	if end <= start {
		return
	}
	_ = syscall.Madvise(b[start-lo:end-lo], syscall.MADV_DONTNEED) // advice only
}

// HostWeights is the block that holds the model's weights (see
// policy.Options.SharedWeights); Weights' tensors lie in it. It belongs to
// the trainer and is unmapped by Close once no session uses it.
func (t *Trainer) HostWeights() *ort.HostWeights { return t.host }
