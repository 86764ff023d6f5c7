package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
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

// TestModelInitPresetAndExportGuard: `model init --preset` writes the
// published shape's config (checked against the Hub's Qwen2.5-0.5B values,
// without writing its 1 GB of weights: the memory check is not reached
// because --out is refused first), and `model export` refuses an --out that
// holds a checkpoint, leaving its files as they were.
func TestModelInitPresetAndExportGuard(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if rc := run([]string{"model", "init", "--config", "../../testdata/models/tiny-qwen2/config.json", "--out", ckpt, "--seed", "3", "--dtype", "bfloat16"}); rc != 0 {
		t.Fatalf("model init: exit %d", rc)
	}
	f, err := safetensors.Open(filepath.Join(ckpt, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	info, ok := f.Info("model.embed_tokens.weight")
	f.Close()
	if !ok || info.DType != safetensors.BF16 {
		t.Fatalf("embed_tokens stored as %v, want BF16", info.DType)
	}
	before, err := os.ReadFile(filepath.Join(ckpt, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rc := run([]string{"model", "export", "--model", ckpt, "--out", ckpt}); rc != 1 {
		t.Errorf("export into the checkpoint: exit %d, want 1", rc)
	}
	after, err := os.ReadFile(filepath.Join(ckpt, "config.json"))
	if err != nil || string(after) != string(before) {
		t.Errorf("the checkpoint's config.json changed (%v)", err)
	}
	if rc := run([]string{"model", "init", "--preset", "qwen2.5-0.5b", "--out", ckpt}); rc != 1 {
		t.Errorf("init over a checkpoint without --force: exit %d, want 1", rc)
	}
	if rc := run([]string{"model", "init", "--preset", "qwen2.5-13b", "--out", filepath.Join(dir, "x")}); rc == 0 {
		t.Error("an unknown preset should fail")
	}
}
