package safetensors

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// SingleFile and IndexFile are the Hugging Face names of a checkpoint's
// weights: one file, or shards listed by an index.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// index is model.safetensors.index.json.
type index struct {
	Metadata  map[string]any    `json:"metadata,omitempty"`
	WeightMap map[string]string `json:"weight_map"`
}

// Checkpoint is a directory's weights: model.safetensors, or the shards named
// by model.safetensors.index.json. Slices it returns alias the mappings and
// are valid until Close.
type Checkpoint struct {
	Dir   string
	files []*File
	where map[string]*File
}

// OpenCheckpoint opens dir's weights. With an index, every file it names is
// opened and every tensor it lists must be in its file; otherwise dir must
// hold model.safetensors.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	c := &Checkpoint{Dir: dir, where: map[string]*File{}}
	idxPath := filepath.Join(dir, IndexFile)
	js, err := os.ReadFile(idxPath)
	switch {
	case err == nil:
		var idx index
		if err := json.Unmarshal(js, &idx); err != nil {
			return nil, fmt.Errorf("safetensors %s: %w", idxPath, err)
		}
		if len(idx.WeightMap) == 0 {
			return nil, fmt.Errorf("safetensors %s: empty weight_map", idxPath)
		}
		opened := map[string]*File{}
		names := make([]string, 0, len(idx.WeightMap))
		for name := range idx.WeightMap {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			shard := idx.WeightMap[name]
			if shard != filepath.Base(shard) {
				c.Close()
				return nil, fmt.Errorf("safetensors %s: tensor %q: shard %q must be a file name in the same directory", idxPath, name, shard)
			}
			f := opened[shard]
			if f == nil {
				f, err = Open(filepath.Join(dir, shard))
				if err != nil {
					c.Close()
					return nil, fmt.Errorf("%s: %w", idxPath, err)
				}
				opened[shard] = f
				c.files = append(c.files, f)
			}
			if _, ok := f.Info(name); !ok {
				c.Close()
				return nil, fmt.Errorf("safetensors %s: tensor %q is not in %s", idxPath, name, f.Path())
			}
			c.where[name] = f
		}
		return c, nil
	case !os.IsNotExist(err):
		return nil, fmt.Errorf("safetensors %s: %w", idxPath, err)
	}
	f, err := Open(filepath.Join(dir, SingleFile))
	if err != nil {
		return nil, err
	}
	c.files = []*File{f}
	for _, t := range f.Tensors() {
		c.where[t.Name] = f
	}
	return c, nil
}

// Close unmaps every file.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.files = nil
	return first
}

// Names lists every tensor name, sorted.
func (c *Checkpoint) Names() []string {
	out := make([]string, 0, len(c.where))
	for n := range c.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Info describes the named tensor and reports whether it exists.
func (c *Checkpoint) Info(name string) (Info, bool) {
	f := c.where[name]
	if f == nil {
		return Info{}, false
	}
	return f.Info(name)
}

// Raw returns the named tensor's bytes (aliasing the mapping).
func (c *Checkpoint) Raw(name string) (Info, []byte, error) {
	f := c.where[name]
	if f == nil {
		return Info{}, nil, fmt.Errorf("safetensors %s: no tensor %q", c.Dir, name)
	}
	return f.Raw(name)
}

// Float32s returns the named tensor as float32 (see File.Float32s).
func (c *Checkpoint) Float32s(name string) (Info, []float32, error) {
	f := c.where[name]
	if f == nil {
		return Info{}, nil, fmt.Errorf("safetensors %s: no tensor %q", c.Dir, name)
	}
	return f.Float32s(name)
}

// WriteCheckpoint writes tensors into dir in Hugging Face layout: one
// model.safetensors when their total is at most maxShard bytes (or maxShard
// ≤ 0), else shards model-0000N-of-0000M.safetensors of at most maxShard bytes
// each (a larger tensor gets a shard to itself) plus model.safetensors.index.json.
// Each file is written atomically; the index is written last.
func WriteCheckpoint(dir string, tensors []Tensor, metadata map[string]string, maxShard int64) error {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	total := int64(0)
	for _, t := range sorted {
		total += int64(len(t.Data))
	}
	if maxShard <= 0 || total <= maxShard {
		if err := Write(filepath.Join(dir, SingleFile), sorted, metadata); err != nil {
			return err
		}
		// A stale index would shadow the new file.
		if err := os.Remove(filepath.Join(dir, IndexFile)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("safetensors %s: %w", dir, err)
		}
		return nil
	}
	var shards [][]Tensor
	size := int64(0)
	for _, t := range sorted {
		if len(shards) == 0 || (size > 0 && size+int64(len(t.Data)) > maxShard) {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		size += int64(len(t.Data))
	}
	idx := index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, s := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := Write(filepath.Join(dir, name), s, metadata); err != nil {
			return err
		}
		for _, t := range s {
			idx.WeightMap[t.Name] = name
		}
	}
	js, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, IndexFile), func(w io.Writer) error {
		_, err := w.Write(append(js, '\n'))
		return err
	})
}
