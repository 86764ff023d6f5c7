package onnx

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/igsearch/igsearch/atomicfile"
)

// External data layout (as ONNX defines it): a model saved with external
// data is PATH (the ModelProto) plus one file PATH.data holding the data of
// every initializer of at least MinExternalBytes, back to back. Each such
// TensorProto has data_location EXTERNAL and external_data entries
// "location" (the data file's base name), "offset" and "length" in bytes.
// Offsets are multiples of 4096 for tensors of 64 KiB and more (so ONNX
// Runtime can memory-map them) and of 64 otherwise; the gaps are zeros.

// DefaultExternalThreshold is the model size above which Save moves weights
// to external data when not asked to: 1 GiB, well under protobuf's 2 GiB.
const DefaultExternalThreshold = 1 << 30

// MinExternalBytes is the size below which an initializer stays inline even
// when weights go to external data (shape constants and the like).
const MinExternalBytes = 1024

// SaveOptions adjust Save. The zero value writes one self-contained file
// unless the model exceeds DefaultExternalThreshold.
type SaveOptions struct {
	// ExternalData forces initializers into PATH.data.
	ExternalData bool
	// ExternalThreshold overrides DefaultExternalThreshold (bytes of
	// encoded model above which external data is used).
	ExternalThreshold int64
	// DataFile is the data file's base name, beside path; "" is
	// base(path)+".data". onnx-community folders use "model.onnx_data".
	DataFile string
}

// Save writes g to path as an ONNX model, with its weights in path+".data"
// (or opts.DataFile) when opts ask for it or the model is too large to be
// one protobuf. Both files are written to temporary names and renamed into
// place; a stale data file is removed when the model is saved inline. Initializer data is
// streamed from the tensors without copies.
func (g *Graph) Save(path string, opts SaveOptions) error {
	if err := g.save(path, opts); err != nil {
		return fmt.Errorf("onnx %s: %w", path, err)
	}
	return nil
}

func (g *Graph) save(path string, opts SaveOptions) error {
	threshold := opts.ExternalThreshold
	if threshold <= 0 {
		threshold = DefaultExternalThreshold
	}
	external := opts.ExternalData
	if !external {
		m, err := g.encodeModel(nil)
		if err != nil {
			return err
		}
		if m.n > threshold || m.n > maxProto {
			external = true
		} else {
			if err := writeAtomic(path, func(w io.Writer) error { _, err := m.writeTo(w); return err }); err != nil {
				return err
			}
			if err := os.Remove(dataFilePath(path, opts)); err != nil && !os.IsNotExist(err) {
				return err
			}
			return nil
		}
	}
	dataPath := dataFilePath(path, opts)
	loc := filepath.Base(dataPath)
	ext := map[*Value]externalRef{}
	var order []*Value
	var off int64
	for _, v := range g.Initializers {
		if v.Init == nil {
			return fmt.Errorf("initializer %q has no data", v.Name)
		}
		n := int64(len(v.Init.Raw))
		if n < MinExternalBytes {
			continue
		}
		align := int64(64)
		if n >= 64<<10 {
			align = 4096
		}
		off = (off + align - 1) / align * align
		ext[v] = externalRef{location: loc, offset: off, length: n}
		order = append(order, v)
		off += n
	}
	m, err := g.encodeModel(ext)
	if err != nil {
		return err
	}
	if m.n > maxProto {
		return fmt.Errorf("model is %d bytes even with external data, over protobuf's 2 GiB limit", m.n)
	}
	err = writeAtomic(dataPath, func(w io.Writer) error {
		var pos int64
		zeros := make([]byte, 4096)
		for _, v := range order {
			ref := ext[v]
			if pad := ref.offset - pos; pad > 0 {
				if _, err := w.Write(zeros[:pad]); err != nil {
					return err
				}
			}
			if err := v.Init.Validate(); err != nil {
				return fmt.Errorf("initializer %q: %w", v.Name, err)
			}
			if _, err := w.Write(v.Init.Raw); err != nil {
				return err
			}
			pos = ref.offset + ref.length
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error { _, err := m.writeTo(w); return err })
}

// dataFilePath is where Save puts the external data of the model at path.
func dataFilePath(path string, opts SaveOptions) string {
	if opts.DataFile != "" {
		return filepath.Join(filepath.Dir(path), opts.DataFile)
	}
	return path + ".data"
}

// writeAtomic writes a file through a temporary in the same directory,
// synced and renamed to path.
func writeAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, write)
}
