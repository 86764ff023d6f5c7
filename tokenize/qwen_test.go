package tokenize

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// qwenPath finds the Qwen2.5 tokenizer.json that `make setup` derives.
func qwenPath() string {
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

var (
	qwenOnce sync.Once
	qwenTok  *Tokenizer
	qwenErr  error
)

// loadQwen loads the real Qwen2.5 tokenizer once per test binary.
func loadQwen(t testing.TB) *Tokenizer {
	t.Helper()
	qwenOnce.Do(func() {
		p := qwenPath()
		if _, err := os.Stat(p); err != nil {
			qwenErr = err
			return
		}
		qwenTok, qwenErr = Load(p)
	})
	if qwenErr != nil {
		t.Fatalf("Qwen2.5 tokenizer (%s): %v; run make setup", qwenPath(), qwenErr)
	}
	return qwenTok
}

type vectorRow struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func loadVectors(t *testing.T) []vectorRow {
	t.Helper()
	f, err := os.Open("../testdata/qwen2.5-tokenizer-vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []vectorRow
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r vectorRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("vectors line %d: %v", len(rows)+1, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 130 {
		t.Fatalf("vectors: %d rows, want 130", len(rows))
	}
	return rows
}

func TestQwenVectors(t *testing.T) {
	tok := loadQwen(t)
	rows := loadVectors(t)
	bad := 0
	for i, r := range rows {
		got := tok.Encode(r.Text)
		if !slices.Equal(got, r.IDs) {
			bad++
			k := 0
			for k < len(got) && k < len(r.IDs) && got[k] == r.IDs[k] {
				k++
			}
			t.Errorf("row %d %q: ids differ at %d:\n got %v\nwant %v", i+1, r.Text, k, got[k:min(len(got), k+8)], r.IDs[k:min(len(r.IDs), k+8)])
		}
		if dec, want := tok.Decode(r.IDs, false), norm.NFC.String(r.Text); dec != want {
			t.Errorf("row %d: decode = %q, want %q", i+1, dec, want)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rows differ", bad, len(rows))
	}
}
