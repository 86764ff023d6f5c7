package policy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
)

// TestReplacedWeightsSameSizeAndMtime reproduces the stale-graph failure of
// the old on-disk graph cache, keyed by the weight files' size and mtime:
// weights replaced by a file of the same size with the same mtime were
// served from the old graphs. The policy must now score with the new
// weights, exactly as the untouched reference checkpoint does.
func TestReplacedWeightsSameSizeAndMtime(t *testing.T) {
	needORT(t)
	const ref = "../testdata/models/tiny-qwen2"
	dir := copyModel(t, ref, "config.json", "model.safetensors")
	cfg, err := qwen2.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "model.safetensors")
	if err := qwen2.Save(dir, cfg, qwen2.Init(cfg, 99), 0); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(st)
	if err != nil {
		t.Fatal(err)
	}
	seqs := [][]int32{{5, 17, 300, 2, 999, 41}}
	score := func(dir string) []float32 {
		t.Helper()
		p, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		lp, err := p.Score(context.Background(), seqs)
		if err != nil {
			t.Fatal(err)
		}
		return lp[0]
	}
	random := score(dir)
	orig, err := os.ReadFile(filepath.Join(ref, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(orig)) != info.Size() {
		t.Fatalf("the replacement is %d bytes, the original %d: the test needs equal sizes", len(orig), info.Size())
	}
	if err := os.WriteFile(st, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(st, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	got, want := score(dir), score(ref)
	if !slices.Equal(got, want) {
		t.Fatalf("after replacing the weights (same size, same mtime): %v, want the reference checkpoint's %v", got, want)
	}
	if slices.Equal(got, random) {
		t.Fatal("the random and the reference weights score the same: the test cannot tell them apart")
	}
}
