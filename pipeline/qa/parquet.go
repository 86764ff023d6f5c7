package qa

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// flatRow is the FlashRAG shape in Parquet.
type flatRow struct {
	ID            string   `parquet:"id,optional"`
	Question      string   `parquet:"question"`
	GoldenAnswers []string `parquet:"golden_answers,list"`
	DataSource    string   `parquet:"data_source,optional"`
}

// chatMessage is one entry of Search-R1's "prompt" column.
type chatMessage struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

// searchR1Row is the shape of Search-R1's processed Parquet files
// (scripts/data_process/qa_search_train_merge.py).
type searchR1Row struct {
	DataSource  string        `parquet:"data_source,optional"`
	Prompt      []chatMessage `parquet:"prompt,list"`
	RewardModel struct {
		GroundTruth struct {
			Target []string `parquet:"target,list"`
		} `parquet:"ground_truth"`
	} `parquet:"reward_model"`
}

// QuestionFromPrompt recovers the question from a Search-R1 or AutoRefine
// prompt: the text after the last "Question: ", trimmed.
func QuestionFromPrompt(prompt string) string {
	if i := strings.LastIndex(prompt, "Question: "); i >= 0 {
		prompt = prompt[i+len("Question: "):]
	}
	return strings.TrimSpace(prompt)
}

// NewParquetReader streams examples from a Parquet file of size bytes. It
// takes the flat columns (id, question, golden_answers, data_source) when
// the file has a "question" column, else Search-R1's nested shape (prompt,
// reward_model.ground_truth.target; the id is the row number). name
// prefixes errors, which give the 0-based row.
func NewParquetReader(r io.ReaderAt, size int64, name string) (*Reader, error) {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, fmt.Errorf("qa: %s: %w", name, err)
	}
	has := map[string]bool{}
	for _, fl := range f.Schema().Fields() {
		has[fl.Name()] = true
	}
	switch {
	case has["question"] && has["golden_answers"]:
		return parquetRows(f, name, func(x flatRow, row int) (Example, error) {
			ex := Example{ID: x.ID, Question: x.Question, GoldenAnswers: x.GoldenAnswers, DataSource: x.DataSource}
			if ex.ID == "" {
				ex.ID = strconv.Itoa(row)
			}
			return ex, nil
		})
	case has["prompt"] && has["reward_model"]:
		return parquetRows(f, name, func(x searchR1Row, row int) (Example, error) {
			if len(x.Prompt) == 0 {
				return Example{}, errors.New("empty prompt")
			}
			return Example{
				ID:            strconv.Itoa(row),
				Question:      QuestionFromPrompt(x.Prompt[len(x.Prompt)-1].Content),
				GoldenAnswers: x.RewardModel.GroundTruth.Target,
				DataSource:    x.DataSource,
			}, nil
		})
	}
	return nil, fmt.Errorf("qa: %s: no question/golden_answers or prompt/reward_model columns", name)
}

// parquetRows reads rows of type T in batches and converts each with conv.
func parquetRows[T any](f *parquet.File, name string, conv func(T, int) (Example, error)) (rd *Reader, err error) {
	defer func() {
		// parquet-go panics on a schema it cannot convert to T.
		if p := recover(); p != nil {
			rd, err = nil, fmt.Errorf("qa: %s: unsupported schema: %v", name, p)
		}
	}()
	pr := parquet.NewGenericReader[T](f)
	buf := make([]T, 64)
	var n, pos, row int
	done := false
	return &Reader{next: func() (Example, error) {
		for pos == n {
			if done {
				return Example{}, io.EOF
			}
			var err error
			n, err = pr.Read(buf)
			pos = 0
			if errors.Is(err, io.EOF) {
				done = true
			} else if err != nil {
				return Example{}, fmt.Errorf("qa: %s: row %d: %w", name, row, err)
			}
		}
		ex, err := conv(buf[pos], row)
		// Own the values: the reader may reuse buf's memory.
		ex.ID, ex.Question, ex.DataSource = strings.Clone(ex.ID), strings.Clone(ex.Question), strings.Clone(ex.DataSource)
		golds := make([]string, len(ex.GoldenAnswers))
		for i, g := range ex.GoldenAnswers {
			golds[i] = strings.Clone(g)
		}
		ex.GoldenAnswers = golds
		if err == nil && len(ex.GoldenAnswers) == 0 {
			err = errors.New("no golden answers")
		}
		if err != nil {
			return Example{}, fmt.Errorf("qa: %s: row %d: %w", name, row, err)
		}
		pos++
		row++
		return ex, nil
	}}, nil
}
