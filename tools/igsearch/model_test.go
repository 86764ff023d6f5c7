package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
)

// TestModelInitExport runs `model init` then `model export` for both graphs
// and checks the exported directories' I/O.
func TestModelInitExport(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if rc := run([]string{"model", "init", "--config", "../../testdata/models/tiny-qwen2/config.json", "--out", ckpt, "--seed", "3"}); rc != 0 {
		t.Fatalf("model init: exit %d", rc)
	}
	if _, err := os.Stat(filepath.Join(ckpt, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ graph, attn, dtype string }{{"inference", "contrib", "fp32"}, {"scoring", "standard", "fp16"}} {
		out := filepath.Join(dir, c.graph)
		if rc := run([]string{"model", "export", "--model", ckpt, "--out", out, "--graph", c.graph, "--attention", c.attn, "--dtype", c.dtype}); rc != 0 {
			t.Fatalf("model export %v: exit %d", c, rc)
		}
		e, err := qwen2.OpenExported(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Kind) != c.graph {
			t.Errorf("exported %s graph, want %s", e.Kind, c.graph)
		}
	}
	if rc := run([]string{"model", "export", "--model", ckpt, "--out", dir, "--graph", "training"}); rc != 2 {
		t.Errorf("bad --graph: exit %d, want 2", rc)
	}
	if rc := run([]string{"model", "frobnicate"}); rc != 2 {
		t.Errorf("bad verb: exit %d, want 2", rc)
	}
}
