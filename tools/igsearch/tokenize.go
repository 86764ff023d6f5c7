package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/igsearch/igsearch/tokenize"
)

var tokenizeStage = &stage{
	name:    "tokenize",
	summary: "encode JSONL text to token ids, or decode ids to text, with a Hugging Face tokenizer.json",
	usage: `igsearch tokenize [--tokenizer PATH] [--decode] [flags] < in.jsonl > out.jsonl

Encodes each input row {"text": "..."} to {"ids": [...]} with a Hugging Face
tokenizer.json (byte-level BPE as in Qwen2.5, or WordLevel), exactly as the
Hugging Face tokenizers library does with add_special_tokens=false. Special
tokens written in the text (<|im_start|>, <|im_end|>, ...) become their ids
unless --no-special is given. With --decode, reads {"ids": [...]} and writes
{"text": "..."}. Output rows are in input order; blank lines are skipped;
other fields of a row are ignored.

Inputs:
  --tokenizer PATH  tokenizer.json (default: $IGSEARCH_QWEN_TOKENIZER, then the
                    Qwen2.5 tokenizer that make setup derives into the cache)
  --in FILE         JSONL input (default "-": stdin)

Output:
  --out FILE        JSONL output (default "-": stdout)

Flags:
  --decode          ids → text instead of text → ids
  --no-special      encode special-token text as plain text
  --skip-special    with --decode, leave special tokens out of the text
  --batch N         rows encoded in parallel at a time (default 256)

Example:
  echo '{"text": "<|im_start|>user\nHello<|im_end|>"}' | igsearch tokenize --tokenizer tokenizer.json
  {"ids":[151644,872,198,9707,151645]}
  echo '{"ids": [9707, 11, 1879]}' | igsearch tokenize --decode
  {"text":"Hello, world"}
`,
	run: runTokenize,
}

func runTokenize(args []string) error {
	fs := newFlags("tokenize")
	path := fs.String("tokenizer", "", "tokenizer.json")
	in := fs.String("in", "-", "JSONL input, - for stdin")
	out := fs.String("out", "-", "JSONL output, - for stdout")
	decode := fs.Bool("decode", false, "ids → text")
	noSpecial := fs.Bool("no-special", false, "encode special-token text as plain text")
	skipSpecial := fs.Bool("skip-special", false, "with --decode, leave special tokens out")
	batch := fs.Int("batch", 256, "rows encoded in parallel at a time")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *batch < 1 {
		return usagef("--batch must be at least 1")
	}
	if *path == "" {
		*path = defaultTokenizerPath()
		if _, err := os.Stat(*path); err != nil {
			return usagef("--tokenizer not given and %s not found; run make setup", *path)
		}
	}
	tok, err := tokenize.Load(*path)
	if err != nil {
		return err
	}
	r := io.Reader(os.Stdin)
	inName := "stdin"
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r, inName = f, *in
	}
	w, err := createOutput(*out)
	if err != nil {
		return err
	}
	defer w.abort()
	if *decode {
		err = decodeRows(tok, r, inName, w.Writer, *skipSpecial)
	} else {
		err = encodeRows(tok, r, inName, w.Writer, *noSpecial, *batch)
	}
	if err != nil {
		return err
	}
	return w.commit()
}

// defaultTokenizerPath is where make setup puts the Qwen2.5 tokenizer.
func defaultTokenizerPath() string {
	if p := os.Getenv("IGSEARCH_QWEN_TOKENIZER"); p != "" {
		return p
	}
	cache := os.Getenv("IGSEARCH_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "igsearch")
	}
	return filepath.Join(cache, "tokenizers", "qwen2.5", "tokenizer.json")
}

// jsonlLines calls fn with each non-blank line and its 1-based number.
func jsonlLines(r io.Reader, fn func(n int, line []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if ferr := fn(n, line); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func encodeRows(tok *tokenize.Tokenizer, r io.Reader, name string, w *bufio.Writer, noSpecial bool, batch int) error {
	texts := make([]string, 0, batch)
	var buf []byte
	flush := func() error {
		for _, ids := range tok.EncodeBatch(texts, noSpecial) {
			buf = append(buf[:0], `{"ids":[`...)
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendInt(buf, int64(id), 10)
			}
			buf = append(buf, "]}\n"...)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		texts = texts[:0]
		return nil
	}
	err := jsonlLines(r, func(n int, line []byte) error {
		var row struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return fmt.Errorf("%s: line %d: %w", name, n, err)
		}
		if row.Text == nil {
			return fmt.Errorf("%s: line %d: no \"text\" field", name, n)
		}
		texts = append(texts, *row.Text)
		if len(texts) == batch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

func decodeRows(tok *tokenize.Tokenizer, r io.Reader, name string, w *bufio.Writer, skipSpecial bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return jsonlLines(r, func(n int, line []byte) error {
		var row struct {
			IDs *[]int32 `json:"ids"`
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return fmt.Errorf("%s: line %d: %w", name, n, err)
		}
		if row.IDs == nil {
			return fmt.Errorf("%s: line %d: no \"ids\" field", name, n)
		}
		// An id the vocabulary lacks would otherwise vanish from the text.
		for i, id := range *row.IDs {
			if _, ok := tok.IDToken(id); !ok {
				return fmt.Errorf("%s: line %d: ids[%d] = %d is not in the tokenizer's vocabulary (ids 0–%d, some unused)", name, n, i, id, tok.VocabSize()-1)
			}
		}
		return enc.Encode(struct {
			Text string `json:"text"`
		}{tok.Decode(*row.IDs, skipSpecial)})
	})
}
