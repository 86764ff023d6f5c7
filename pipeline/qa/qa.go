// Package qa reads question-answering data sets: FlashRAG / Search-R1
// JSONL lines {"id", "question", "golden_answers": [..], "data_source"?},
// and Parquet files with the same columns or with Search-R1's processed
// shape (the question inside a "prompt" chat list, the gold answers under
// "reward_model.ground_truth.target"). Readers stream; ReadAll, Shuffle and
// Split serve the stages that need a whole (small) set.
package qa

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// Example is one question with its gold answers.
type Example struct {
	// ID identifies the question. When the source has none, it is the
	// 0-based row number in the file.
	ID string `json:"id"`
	// Question is the raw question text.
	Question string `json:"question"`
	// GoldenAnswers are the accepted answers, at least one.
	GoldenAnswers []string `json:"golden_answers"`
	// DataSource names the data set (nq, hotpotqa, …), or "".
	DataSource string `json:"data_source,omitempty"`
}

// Reader streams examples from one file. Next returns io.EOF after the
// last one. A Reader is not safe for concurrent use.
type Reader struct {
	next   func() (Example, error)
	closer io.Closer
}

// Next returns the next example, or io.EOF at the end.
func (r *Reader) Next() (Example, error) { return r.next() }

// Close closes the file that Open opened; it is a no-op otherwise.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Open opens a data set by its extension: ".parquet" is Parquet, anything
// else is JSONL.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("qa: %w", err)
	}
	if strings.HasSuffix(path, ".parquet") {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("qa: %w", err)
		}
		r, err := NewParquetReader(f, st.Size(), path)
		if err != nil {
			f.Close()
			return nil, err
		}
		r.closer = f
		return r, nil
	}
	r := NewJSONLReader(f, path)
	r.closer = f
	return r, nil
}

// jsonExample is the wire form of a JSONL line; id may be a string or a
// number, golden_answers a list or a single value.
type jsonExample struct {
	ID            json.RawMessage `json:"id"`
	Question      *string         `json:"question"`
	GoldenAnswers json.RawMessage `json:"golden_answers"`
	DataSource    string          `json:"data_source"`
}

// NewJSONLReader streams examples from JSONL; name (usually the file path)
// prefixes errors, which also give the 1-based line number. Blank lines
// are skipped. Lines may be of any length.
func NewJSONLReader(r io.Reader, name string) *Reader {
	br := bufio.NewReaderSize(r, 1<<16)
	line, row := 0, 0
	return &Reader{next: func() (Example, error) {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					return Example{}, io.EOF
				}
				return Example{}, fmt.Errorf("qa: %s: line %d: %w", name, line+1, err)
			}
			line++
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			ex, perr := parseLine(b, row)
			if perr != nil {
				return Example{}, fmt.Errorf("qa: %s: line %d: %w", name, line, perr)
			}
			row++
			return ex, nil
		}
	}}
}

func parseLine(b []byte, row int) (Example, error) {
	var j jsonExample
	if err := json.Unmarshal(b, &j); err != nil {
		return Example{}, err
	}
	ex := Example{DataSource: j.DataSource}
	switch id := bytes.TrimSpace(j.ID); {
	case len(id) == 0 || string(id) == "null":
		ex.ID = strconv.Itoa(row)
	case id[0] == '"':
		if err := json.Unmarshal(id, &ex.ID); err != nil {
			return Example{}, fmt.Errorf("id: %w", err)
		}
	default:
		ex.ID = string(id)
	}
	if j.Question == nil {
		return Example{}, errors.New(`missing "question"`)
	}
	ex.Question = *j.Question
	golds, err := ParseGolds(j.GoldenAnswers)
	if err != nil {
		return Example{}, err
	}
	ex.GoldenAnswers = golds
	return ex, nil
}

// ParseGolds reads a "golden_answers" value: a list of strings or numbers,
// or a single one (numbers as their shortest decimal form). Missing, null,
// empty or other values are an error.
func ParseGolds(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New(`missing "golden_answers"`)
	}
	var vals []any
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &vals); err != nil {
			return nil, fmt.Errorf("golden_answers: %w", err)
		}
	} else {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("golden_answers: %w", err)
		}
		vals = []any{v}
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		default:
			return nil, fmt.Errorf("golden_answers: unsupported value %v", v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New(`empty "golden_answers"`)
	}
	return out, nil
}

// ReadAll reads up to limit examples (limit <= 0: all) from r.
func ReadAll(r *Reader, limit int) ([]Example, error) {
	var out []Example
	for limit <= 0 || len(out) < limit {
		ex, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	return out, nil
}

// Shuffle permutes xs in place, reproducibly for a given seed (PCG with
// seed, seed).
func Shuffle(xs []Example, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
}

// Split cuts xs into a first part of round(frac·len) examples and the rest
// (e.g. train and dev after a Shuffle). frac is clamped to [0, 1]. The
// parts share xs's backing array.
func Split(xs []Example, frac float64) (first, rest []Example) {
	n := int(float64(len(xs))*min(max(frac, 0), 1) + 0.5)
	return xs[:n:n], xs[n:]
}
