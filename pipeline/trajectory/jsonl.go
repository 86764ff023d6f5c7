package trajectory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/igsearch/igsearch/atomicfile"
)

// Reader streams records from JSONL; blank lines are skipped and lines may
// be of any length. Errors name the input and the 1-based line.
type Reader struct {
	br   *bufio.Reader
	name string
	line int
}

// NewReader reads records from r; name (usually the path) prefixes errors.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 1<<16), name: name}
}

// Next returns the next record, decoded and validated, or io.EOF.
func (r *Reader) Next() (Record, error) {
	for {
		b, err := r.br.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("trajectory: %s: line %d: %w", r.name, r.line+1, err)
		}
		r.line++
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return Record{}, fmt.Errorf("trajectory: %s: line %d: %w", r.name, r.line, err)
		}
		if err := rec.Validate(); err != nil {
			return Record{}, fmt.Errorf("trajectory: %s: line %d: %w", r.name, r.line, err)
		}
		return rec, nil
	}
}

// Line is the 1-based number of the line Next read last.
func (r *Reader) Line() int { return r.line }

// Writer writes JSONL to a temporary file beside its destination and
// renames it into place on Close, so a reader never sees half a file. It is
// not safe for concurrent use.
type Writer struct {
	path string
	f    *atomicfile.File
	bw   *bufio.Writer
	enc  *json.Encoder
}

// Create starts an atomic JSONL file at path.
func Create(path string) (*Writer, error) {
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trajectory: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &Writer{path: path, f: f, bw: bw, enc: enc}, nil
}

// Write appends v (a Record, or any JSON row) as one line.
func (w *Writer) Write(v any) error {
	if err := w.enc.Encode(v); err != nil {
		return fmt.Errorf("trajectory: write %s: %w", w.path, err)
	}
	return nil
}

// Close flushes, syncs and renames the file into place. On error the
// temporary file is removed.
func (w *Writer) Close() error {
	if err := w.bw.Flush(); err != nil {
		w.f.Abort()
		return fmt.Errorf("trajectory: close %s: %w", w.path, err)
	}
	if err := w.f.Commit(); err != nil {
		return fmt.Errorf("trajectory: close: %w", err)
	}
	return nil
}

// Abort discards the file: the destination is left untouched.
func (w *Writer) Abort() error {
	w.f.Abort()
	return nil
}
