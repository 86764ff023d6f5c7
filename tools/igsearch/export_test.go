package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModelExportCommunityLayout runs `model export` as a user would on an
// HF checkpoint with tokenizer and generation files, fp32 then fp16 into
// one folder, and checks the onnx-community layout transformers.js reads.
func TestModelExportCommunityLayout(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if rc := run([]string{"model", "init", "--config", "../../testdata/models/tiny-qwen2/config.json", "--out", ckpt, "--seed", "3"}); rc != 0 {
		t.Fatalf("model init: exit %d", rc)
	}
	files := map[string]string{
		"tokenizer.json":         `{"version": "1.0"}`,
		"tokenizer_config.json":  `{"model_max_length": 32768}`,
		"generation_config.json": `{"eos_token_id": [151645, 151643]}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(ckpt, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "onnx-folder")
	for _, dtype := range []string{"fp32", "fp16"} {
		if rc, msg := captureErr(t, "model", "export", "--model", ckpt, "--out", out, "--dtype", dtype, "--external-data"); rc != 0 {
			t.Fatalf("model export --dtype %s: exit %d: %s", dtype, rc, msg)
		}
	}
	for _, f := range []string{"onnx/model.onnx", "onnx/model.onnx_data", "onnx/model_fp16.onnx", "onnx/model_fp16.onnx_data", "config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	for name, body := range files {
		if got, _ := os.ReadFile(filepath.Join(out, name)); string(got) != body {
			t.Errorf("%s: %q, want the checkpoint's %q", name, got, body)
		}
	}
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(out, "config.json"))
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	tjs, _ := json.Marshal(cfg["transformers.js_config"])
	if want := `{"kv_cache_dtype":{"fp16":"float16"},"use_external_data_format":{"model.onnx":1,"model_fp16.onnx":1}}`; string(tjs) != want || cfg["model_type"] != "qwen2" {
		t.Errorf("config.json: transformers.js_config %s, model_type %v; want %s, qwen2", tjs, cfg["model_type"], want)
	}

	// A folder that is not a checkpoint gets an error naming it.
	rc, msg := captureErr(t, "model", "export", "--model", filepath.Join(dir, "nothing"), "--out", filepath.Join(dir, "x"))
	if rc == 0 || !strings.Contains(msg, filepath.Join(dir, "nothing")) {
		t.Errorf("a missing checkpoint: exit %d, %q", rc, msg)
	}
}
