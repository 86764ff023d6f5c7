package qa

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func TestJSONL(t *testing.T) {
	in := `{"id": "train_0", "question": "who wrote hamlet", "golden_answers": ["Shakespeare", "William Shakespeare"], "data_source": "nq"}

{"id": 7, "question": "2+2?", "golden_answers": [4]}
{"question": "q3", "golden_answers": "single"}
`
	got, err := ReadAll(NewJSONLReader(strings.NewReader(in), "d.jsonl"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{ID: "train_0", Question: "who wrote hamlet", GoldenAnswers: []string{"Shakespeare", "William Shakespeare"}, DataSource: "nq"},
		{ID: "7", Question: "2+2?", GoldenAnswers: []string{"4"}},
		{ID: "2", Question: "q3", GoldenAnswers: []string{"single"}}, // no id: 0-based row
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	lim, _ := ReadAll(NewJSONLReader(strings.NewReader(in), "d.jsonl"), 2)
	if len(lim) != 2 {
		t.Errorf("limit 2: %d", len(lim))
	}
}

func TestJSONLErrors(t *testing.T) {
	cases := map[string]string{
		"{\"question\":\"a\",\"golden_answers\":[\"b\"]}\n\n{\"question\": oops}\n": "d.jsonl: line 3:",
		"{\"question\":\"a\"}\n":                         "d.jsonl: line 1: missing \"golden_answers\"",
		"{\"golden_answers\":[\"x\"]}\n":                 "d.jsonl: line 1: missing \"question\"",
		"{\"question\":\"a\",\"golden_answers\":[]}\n":   "d.jsonl: line 1: empty",
		"{\"question\":\"a\",\"golden_answers\":[{}]}\n": "d.jsonl: line 1: golden_answers: unsupported",
	}
	for in, want := range cases {
		_, err := ReadAll(NewJSONLReader(strings.NewReader(in), "d.jsonl"), 0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("input %q: err = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestParquetFlat(t *testing.T) {
	rows := []flatRow{
		{ID: "a", Question: "q1", GoldenAnswers: []string{"x", "y"}, DataSource: "nq"},
		{Question: "q2", GoldenAnswers: []string{"z"}},
	}
	path := writeParquet(t, rows)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := ReadAll(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{ID: "a", Question: "q1", GoldenAnswers: []string{"x", "y"}, DataSource: "nq"},
		{ID: "1", Question: "q2", GoldenAnswers: []string{"z"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParquetSearchR1Shape(t *testing.T) {
	var rows []searchR1Row
	for i, q := range []string{"who is it?", "where is it?"} {
		var r searchR1Row
		r.DataSource = "hotpotqa"
		r.Prompt = []chatMessage{{Role: "user", Content: "Answer the given question. For example, <answer> Beijing </answer>. Question: " + q + "\n"}}
		r.RewardModel.GroundTruth.Target = []string{"gold" + string(rune('A'+i))}
		rows = append(rows, r)
	}
	// Many rows, to cross the reader's batch of 64.
	for i := 0; i < 100; i++ {
		rows = append(rows, rows[0])
	}
	r, err := Open(writeParquet(t, rows))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 102 {
		t.Fatalf("%d rows", len(got))
	}
	want := Example{ID: "1", Question: "where is it?", GoldenAnswers: []string{"goldB"}, DataSource: "hotpotqa"}
	if !reflect.DeepEqual(got[1], want) || got[101].ID != "101" || got[101].GoldenAnswers[0] != "goldA" {
		t.Errorf("got %+v / %+v", got[1], got[101])
	}
}

func TestParquetBadSchema(t *testing.T) {
	type other struct {
		X int64 `parquet:"x"`
	}
	if _, err := Open(writeParquet(t, []other{{1}})); err == nil || !strings.Contains(err.Error(), "no question") {
		t.Errorf("err = %v", err)
	}
}

func writeParquet[T any](t *testing.T, rows []T) string {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "d.parquet")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestShuffleSplit(t *testing.T) {
	mk := func() []Example {
		xs := make([]Example, 10)
		for i := range xs {
			xs[i].ID = string(rune('a' + i))
		}
		return xs
	}
	a, b, c := mk(), mk(), mk()
	Shuffle(a, 42)
	Shuffle(b, 42)
	Shuffle(c, 43)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different order")
	}
	if reflect.DeepEqual(a, mk()) || reflect.DeepEqual(a, c) {
		t.Error("shuffle did nothing or ignored the seed")
	}
	first, rest := Split(mk(), 0.75) // round(7.5) = 8
	if len(first) != 8 || len(rest) != 2 || rest[0].ID != "i" {
		t.Errorf("Split = %d, %d", len(first), len(rest))
	}
	if f, r := Split(mk(), 2); len(f) != 10 || len(r) != 0 {
		t.Error("Split clamps")
	}
	if _, err := NewJSONLReader(strings.NewReader(""), "e").Next(); !errors.Is(err, io.EOF) {
		t.Errorf("empty: %v", err)
	}
}
