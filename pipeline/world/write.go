package world

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/igsearch/igsearch/atomicfile"
)

// Files lists the files Write puts in its directory.
var Files = []string{"corpus.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "expert.jsonl", "tokenizer.json", "world.json"}

// DirKind is a directory Write wrote, for atomicfile.Guard: Files and
// nothing else, with world.json. Write replaces those files one by one, so
// a stage writing a world checks first that the directory holds no one
// else's train.jsonl.
var DirKind = atomicfile.Kind{
	Name:   "a generated world",
	Marker: "world.json",
	Owns: func(name string) bool {
		for _, f := range Files {
			if f == name {
				return true
			}
		}
		return false
	},
}

// Summary is the content of world.json: the config and the counts.
type Summary struct {
	Seed       uint64                    `json:"seed"`
	Config     Config                    `json:"config"`
	Entities   map[EntityType]int        `json:"entities"`
	Passages   int                       `json:"passages"`
	Questions  map[string]map[string]int `json:"questions"` // split → data_source → count
	Queries    map[QueryKind]int         `json:"expert_queries"`
	VocabSize  int                       `json:"vocab_size"`
	Relations  []Relation                `json:"relations"`
	Formats    map[string]string         `json:"formats"`
	MaxPassage int                       `json:"max_passage_words"`
	MinPassage int                       `json:"min_passage_words"`
}

// Summary counts the world's entities, questions, expert queries and words.
func (w *World) Summary() Summary {
	s := Summary{
		Seed: w.Config.Seed, Config: w.Config, Entities: map[EntityType]int{}, Passages: len(w.Passages),
		Questions: map[string]map[string]int{}, Queries: map[QueryKind]int{}, VocabSize: len(w.Vocab),
		Relations: []Relation{BornIn, LocatedIn, CapitalOf, FoundedBy, HeadquarteredIn, AuthorOf, BirthYear, FoundingYear, PublicationYear},
		Formats: map[string]string{
			"corpus.jsonl":   "wiki-18: {id, contents: \"\\\"Title\\\"\\ntext\"}",
			"train.jsonl":    "FlashRAG: {id, question, golden_answers, data_source, metadata: {chain, gold_docs}}",
			"expert.jsonl":   "{id, question, golden_answers, data_source, turns: [{think, query, kind, step, doc_id} ..., {think, step, answer}]}",
			"tokenizer.json": "Hugging Face WordLevel, Whitespace pre-tokenizer",
		},
		MinPassage: -1,
	}
	for _, e := range w.Entities {
		s.Entities[e.Type]++
	}
	for _, p := range w.Passages {
		n := countWords(p.Text)
		s.MaxPassage = max(s.MaxPassage, n)
		if s.MinPassage < 0 || n < s.MinPassage {
			s.MinPassage = n
		}
	}
	for _, sp := range []struct {
		name string
		qs   []Question
	}{{"train", w.Train}, {"dev", w.Dev}, {"test", w.Test}} {
		m := map[string]int{}
		for _, q := range sp.qs {
			m[q.DataSource]++
		}
		s.Questions[sp.name] = m
	}
	for _, x := range w.Expert {
		for _, t := range x.Turns {
			if t.Kind != "" {
				s.Queries[t.Kind]++
			}
		}
	}
	return s
}

// Write writes the world's files into dir, creating it if needed. Each file
// is written under a temporary name in dir and renamed into place, so a
// reader never sees a partial file. The files:
//
//	corpus.jsonl    {"id": "0", "contents": "\"Title\"\ntext"}  (wiki-18; id = doc id)
//	train.jsonl     {"id": "train_0", "question": "...", "golden_answers": ["..."],
//	dev.jsonl        "data_source": "single-hop"|"2-hop"|"3-hop"|"comparison",
//	test.jsonl       "metadata": {"chain": [Step...], "gold_docs": ["12", ...]}}
//	expert.jsonl    Expert, one per train question, in train order
//	tokenizer.json  Hugging Face WordLevel tokenizer over Vocab
//	world.json      Summary
func (w *World) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	type corpusRow struct {
		ID       string `json:"id"`
		Contents string `json:"contents"`
	}
	jsonl := func(n int, row func(i int) any) func(io.Writer) error {
		return func(out io.Writer) error {
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			for i := 0; i < n; i++ {
				if err := enc.Encode(row(i)); err != nil {
					return fmt.Errorf("row %d: %w", i, err)
				}
			}
			return nil
		}
	}
	questions := func(qs []Question) func(io.Writer) error {
		return jsonl(len(qs), func(i int) any { return qs[i] })
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"corpus.jsonl", jsonl(len(w.Passages), func(i int) any {
			return corpusRow{strconv.Itoa(w.Passages[i].ID), w.Passages[i].Contents()}
		})},
		{"train.jsonl", questions(w.Train)},
		{"dev.jsonl", questions(w.Dev)},
		{"test.jsonl", questions(w.Test)},
		{"expert.jsonl", jsonl(len(w.Expert), func(i int) any { return w.Expert[i] })},
		{"tokenizer.json", func(out io.Writer) error {
			b, err := tokenizerJSON(w.Vocab)
			if err != nil {
				return err
			}
			_, err = out.Write(b)
			return err
		}},
		{"world.json", func(out io.Writer) error {
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(w.Summary())
		}},
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.write); err != nil {
			return fmt.Errorf("world: %w", err)
		}
	}
	return nil
}
