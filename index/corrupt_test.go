package index

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smallIndexDir builds a small index once per test and returns its files.
func smallIndexFiles(t testing.TB) map[string][]byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ix")
	if _, err := Build(context.Background(), strings.NewReader(synthCorpus(t, 300, 5)), dir, BuildOptions{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, c := range components {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		files[c.file] = b
	}
	return files
}

func writeIndex(t testing.TB, files map[string][]byte) string {
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// exercise runs every read path of an index that opened, to show that
// damage the checks let through still cannot crash it.
func exercise(ix *Index) {
	for _, q := range []string{synthWord(0), synthWord(1) + " " + synthWord(2) + " " + synthWord(40), synthWord(7)} {
		ix.SearchWithStats(q, 5)
		ix.exhaustive(q, 5)
	}
	for d := 0; d < ix.NumDocs(); d += 7 {
		ix.Doc(uint32(d))
	}
	ix.Stats()
}

// TestCorruptIndex truncates and damages each file in turn: Open (or, for
// the document store, Doc) must return an error naming the file and the
// problem, never panic.
func TestCorruptIndex(t *testing.T) {
	files := smallIndexFiles(t)
	for _, c := range components {
		orig := files[c.file]
		cases := map[string][]byte{
			"truncated":     orig[:len(orig)/2],
			"header only":   orig[:headerSize],
			"empty":         {},
			"bit flip":      flip(orig, len(orig)*2/3),
			"bad magic":     flip(orig, 0),
			"wrong version": flip(orig, 8),
			"appended":      append(bytes.Clone(orig), 0, 1, 2),
		}
		for name, damaged := range cases {
			t.Run(c.file+"/"+name, func(t *testing.T) {
				mod := map[string][]byte{}
				for k, v := range files {
					mod[k] = v
				}
				mod[c.file] = damaged
				dir := writeIndex(t, mod)
				ix, err := Open(dir)
				if err == nil {
					defer ix.Close()
					if c.file != "docs.bin" || name != "bit flip" {
						t.Fatalf("Open succeeded on a damaged %s", c.file)
					}
					// The document store is not checksummed at open: the
					// damaged frame must fail at Doc with a clear error.
					var derr error
					for d := 0; d < ix.NumDocs() && derr == nil; d++ {
						_, derr = ix.Doc(uint32(d))
					}
					if derr == nil || !strings.Contains(derr.Error(), "docs.bin") || !errors.Is(derr, ErrCorrupt) {
						t.Fatalf("damaged docs.bin: Doc error %v", derr)
					}
					return
				}
				msg := err.Error()
				if !strings.Contains(msg, c.file) || !strings.Contains(msg, dir) {
					t.Errorf("error does not name the file: %v", err)
				}
				if name == "wrong version" {
					if !strings.Contains(msg, "version") {
						t.Errorf("error does not mention the version: %v", err)
					}
				} else if !errors.Is(err, ErrCorrupt) {
					t.Errorf("error does not wrap ErrCorrupt: %v", err)
				}
			})
		}
	}
	t.Run("missing file", func(t *testing.T) {
		mod := map[string][]byte{}
		for k, v := range files {
			if k != "postings.bin" {
				mod[k] = v
			}
		}
		_, err := Open(writeIndex(t, mod))
		if err == nil || !strings.Contains(err.Error(), "postings.bin") {
			t.Errorf("missing postings.bin: %v", err)
		}
	})
}

func flip(b []byte, at int) []byte {
	c := bytes.Clone(b)
	if at < len(c) {
		c[at] ^= 0x5a
	}
	return c
}

// FuzzOpen damages one file of a valid index at random; Open must fail
// cleanly or give an index whose every read path works without panicking.
func FuzzOpen(f *testing.F) {
	files := smallIndexFiles(f)
	f.Add(uint8(0), uint32(20), []byte{1})
	f.Add(uint8(1), uint32(30), []byte{0xff, 0xff})
	f.Add(uint8(2), uint32(100), []byte{0})
	f.Add(uint8(3), uint32(16), []byte{9, 9, 9, 9})
	f.Add(uint8(4), uint32(200), []byte{7})
	f.Add(uint8(5), uint32(24), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(2), uint32(1<<31), []byte{})
	f.Fuzz(func(t *testing.T, which uint8, at uint32, patch []byte) {
		c := components[int(which)%len(components)]
		mod := map[string][]byte{}
		for k, v := range files {
			mod[k] = v
		}
		b := bytes.Clone(files[c.file])
		if int(at) >= len(b) {
			b = b[:int(at)%(len(b)+1)] // truncate
		} else {
			copy(b[at:], patch)
		}
		mod[c.file] = b
		ix, err := Open(writeIndex(t, mod))
		if err != nil {
			if !strings.Contains(err.Error(), ".bin") {
				t.Fatalf("error names no file: %v", err)
			}
			return
		}
		defer ix.Close()
		exercise(ix)
	})
}

// FuzzCorpusReader feeds arbitrary bytes to the corpus reader: it must
// return Docs, *LineErrors with a positive line number, or io.EOF, and never
// panic or loop.
func FuzzCorpusReader(f *testing.F) {
	f.Add([]byte(`{"id": "0", "contents": "\"T\"\ntext"}` + "\n"))
	f.Add([]byte(`{"id": 1, "title": "a", "text": "b"}`))
	f.Add([]byte("{\n}\n\n{\"id\":null}\r\n"))
	f.Add([]byte(`{"id": "x", "contents": 5}`))
	f.Add([]byte(`{"id": [1], "text": ""}` + "\n" + `{"id": "2", "contents": "\"unterminated`))
	f.Add([]byte("\xff\xfe\x00garbage\n\n  \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := NewCorpusReader(bytes.NewReader(data))
		for i := 0; i <= len(data)+1; i++ {
			d, err := cr.Next()
			if err == nil {
				if d.ID == "" {
					t.Fatal("doc without id")
				}
				continue
			}
			var le *LineError
			if errors.As(err, &le) {
				if le.Line <= 0 {
					t.Fatalf("line number %d", le.Line)
				}
				continue
			}
			if err.Error() != "EOF" {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		t.Fatal("reader did not reach EOF")
	})
}
