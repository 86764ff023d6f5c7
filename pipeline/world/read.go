package world

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ReadQuestions streams the questions of a train/dev/test.jsonl file written
// by Write, calling fn for each in file order; an error from fn stops the
// read and is returned.
func ReadQuestions(r io.Reader, fn func(Question) error) error {
	return readJSONLines(r, fn)
}

// ReadExpert streams the trajectories of an expert.jsonl file written by
// Write, calling fn for each in file order; an error from fn stops the read
// and is returned.
func ReadExpert(r io.Reader, fn func(Expert) error) error {
	return readJSONLines(r, fn)
}

func readJSONLines[T any](r io.Reader, fn func(T) error) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for n := 1; ; n++ {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("world: record %d: %w", n, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
}
