package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenizeStage(t *testing.T) {
	tok := "../../testdata/tokenize/wordlevel-tokenizer.json"
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	out := filepath.Join(dir, "out.jsonl")
	write := func(s string) {
		if err := os.WriteFile(in, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	write(`{"text": "<|im_start|>user\nwho wrote hamlet ?<|im_end|>"}` + "\n\n" + `{"text": "<search> the </search>", "id": 7}` + "\n")
	if err := runTokenize([]string{"--tokenizer", tok, "--in", in, "--out", out}); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), "{\"ids\":[2,4,7,8,9,10,3]}\n{\"ids\":[20,14,21]}\n"; got != want {
		t.Errorf("encode:\n got %q\nwant %q", got, want)
	}
	if err := runTokenize([]string{"--tokenizer", tok, "--in", in, "--out", out, "--no-special"}); err != nil {
		t.Fatal(err)
	}
	// "?<|" is one Whitespace piece, unknown.
	if got := read(); !strings.HasPrefix(got, `{"ids":[0,0,0,4,7,8,9,0,0,0]}`) {
		t.Errorf("--no-special: %q", got)
	}

	write(`{"ids": [2, 4, 7, 3]}` + "\n" + `{"ids": []}` + "\n")
	if err := runTokenize([]string{"--tokenizer", tok, "--in", in, "--out", out, "--decode", "--skip-special"}); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), "{\"text\":\"user who\"}\n{\"text\":\"\"}\n"; got != want {
		t.Errorf("decode:\n got %q\nwant %q", got, want)
	}

	for _, c := range []struct{ input, flag, want string }{
		{`{"text": "a"}` + "\n" + `{"text": 3}` + "\n", "", "line 2"},
		{`{"text": "a"}` + "\n" + `{"text": "b"` + "\n", "", "line 2"},
		{`{"other": "a"}` + "\n", "", `line 1: no "text" field`},
		{`{"ids": [1, "x"]}` + "\n", "--decode", "line 1"},
	} {
		write(c.input)
		args := []string{"--tokenizer", tok, "--in", in, "--out", out}
		if c.flag != "" {
			args = append(args, c.flag)
		}
		err := runTokenize(args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("input %q: error %v, want one mentioning %q", c.input, err, c.want)
		}
	}
	if err := runTokenize([]string{"--tokenizer", filepath.Join(dir, "missing.json"), "--in", in}); err == nil {
		t.Error("a missing tokenizer is not an error")
	}
}
