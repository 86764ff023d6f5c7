package index

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// Doc is one passage: its corpus id, title and text.
type Doc struct {
	ID    string
	Title string
	Text  string
	// verbatim is the corpus row's "contents" as it was, kept only when
	// Title and Text would not rebuild it (see ContentsDoc); hasVerbatim
	// tells an empty one from none.
	verbatim    string
	hasVerbatim bool
}

// Contents returns the passage as Search-R1 shows it and as it is indexed:
// the corpus row's "contents" exactly as it was, or, for a row given as
// {"title", "text"}, the title in double quotes on the first line, then the
// text.
func (d Doc) Contents() string {
	if d.hasVerbatim {
		return d.verbatim
	}
	return "\"" + d.Title + "\"\n" + d.Text
}

// LineError is a malformed corpus line. Line counts from 1.
type LineError struct {
	Line int64
	Err  error
}

// Error formats the error with its line number.
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// maxLineBytes bounds one corpus line; a longer line is an error.
const maxLineBytes = 64 << 20

// corpusRow is the union of the two row formats.
type corpusRow struct {
	ID       json.RawMessage `json:"id"`
	Contents *string         `json:"contents"`
	Title    *string         `json:"title"`
	Text     *string         `json:"text"`
}

// ParseDoc parses one JSONL corpus row in either format:
// {"id", "contents": "\"Title\"\ntext"} (Search-R1 wiki-18; the title is the
// first line with its surrounding quotes removed, and Contents returns the
// row's contents unchanged: ContentsDoc) or {"id", "title", "text"}.
// The id may be a JSON string or number.
func ParseDoc(line []byte) (Doc, error) {
	var row corpusRow
	if err := json.Unmarshal(line, &row); err != nil {
		return Doc{}, fmt.Errorf("bad JSON: %w", err)
	}
	id, err := parseID(row.ID)
	if err != nil {
		return Doc{}, err
	}
	d := Doc{ID: id}
	switch {
	case row.Contents != nil:
		d = ContentsDoc(id, *row.Contents)
	case row.Text != nil:
		d.Text = *row.Text
		if row.Title != nil {
			d.Title = *row.Title
		}
	default:
		return Doc{}, errors.New(`row has neither "contents" nor "text"`)
	}
	return d, nil
}

func parseID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New(`row has no "id"`)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("bad id: %w", err)
		}
		if s == "" {
			return "", errors.New(`empty "id"`)
		}
		return s, nil
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
		return "", fmt.Errorf(`"id" is neither a string nor a number: %s`, raw)
	}
	return string(raw), nil
}

// LineReader streams the lines of a JSONL corpus, skipping blank lines. It
// never holds more than one line in memory.
type LineReader struct {
	r    *bufio.Reader
	line int64
	buf  []byte
}

// NewLineReader returns a LineReader over uncompressed JSONL.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// Next returns the next non-blank line (without its newline) and its line
// number, counting from 1. The slice is valid until the next call. At the end
// it returns io.EOF.
func (lr *LineReader) Next() ([]byte, int64, error) {
	for {
		lr.buf = lr.buf[:0]
		for {
			frag, err := lr.r.ReadSlice('\n')
			lr.buf = append(lr.buf, frag...)
			if len(lr.buf) > maxLineBytes {
				lr.line++
				return nil, lr.line, &LineError{Line: lr.line, Err: fmt.Errorf("line longer than %d bytes", maxLineBytes)}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return nil, lr.line, err
			}
			if err == io.EOF && len(lr.buf) == 0 {
				return nil, lr.line, io.EOF
			}
			break
		}
		lr.line++
		line := bytes.TrimRight(lr.buf, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return line, lr.line, nil
	}
}

// CorpusReader streams Docs from a JSONL corpus.
type CorpusReader struct {
	lines *LineReader
}

// NewCorpusReader returns a reader of Docs from uncompressed JSONL.
func NewCorpusReader(r io.Reader) *CorpusReader {
	return &CorpusReader{lines: NewLineReader(r)}
}

// Next returns the next Doc. A malformed line gives a *LineError; the reader
// can go on after it. At the end it returns io.EOF.
func (cr *CorpusReader) Next() (Doc, error) {
	line, n, err := cr.lines.Next()
	if err != nil {
		return Doc{}, err
	}
	d, err := ParseDoc(line)
	if err != nil {
		return Doc{}, &LineError{Line: n, Err: err}
	}
	return d, nil
}

// OpenCorpusFile opens a corpus file for streaming, decompressing it by its
// name: ".gz" (gzip), ".zst" (zstd) or anything else (plain JSONL). The
// returned size is the file's size on disk, for progress; the count of bytes
// read so far is reported through the returned *CountingReader.
func OpenCorpusFile(path string) (io.ReadCloser, *CountingReader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	cr := &CountingReader{R: f}
	var rc io.ReadCloser
	switch {
	case strings.HasSuffix(path, ".gz"):
		gz, err := gzip.NewReader(bufio.NewReaderSize(cr, 1<<20))
		if err != nil {
			f.Close()
			return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		rc = &stackCloser{Reader: gz, closers: []io.Closer{gz, f}}
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(bufio.NewReaderSize(cr, 1<<20))
		if err != nil {
			f.Close()
			return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		rc = &stackCloser{Reader: zr, closers: []io.Closer{zstdCloser{zr}, f}}
	default:
		rc = &stackCloser{Reader: cr, closers: []io.Closer{f}}
	}
	return rc, cr, st.Size(), nil
}

// CountingReader counts the bytes read through it. Count is safe to call
// from another goroutine while reading goes on.
type CountingReader struct {
	R io.Reader
	n atomic.Int64
}

// Read reads from R and counts the bytes.
func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Count returns the number of bytes read so far.
func (c *CountingReader) Count() int64 { return c.n.Load() }

type stackCloser struct {
	io.Reader
	closers []io.Closer
}

// Close closes every layer, innermost last.
func (s *stackCloser) Close() error {
	var first error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type zstdCloser struct{ d *zstd.Decoder }

// Close releases the decoder.
func (z zstdCloser) Close() error { z.d.Close(); return nil }
