package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/models/safetensors"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/trainer"
)

// TestLogprobsOfLoRACheckpoint: `--model` on a LoRA checkpoint (base +
// PEFT adapter files from `trainer step --lora-rank`) scores with the
// adapters, as PEFT defines them: W + (alpha/r)·B·A, merged here in float64
// from the adapter file and saved as a plain checkpoint for comparison.
func TestLogprobsOfLoRACheckpoint(t *testing.T) {
	const fixture = "../../testdata/models/tiny-qwen2"
	dir := t.TempDir()
	lora := filepath.Join(dir, "lora")
	if code := run([]string{"trainer", "step", "--model", fixture, "--batch", fixture + "/grpo-step/grpo_step.json", "--out", lora,
		"--lora-rank", "4", "--lora-alpha", "16", "--lora-targets", "q_proj,down_proj"}); code != 0 {
		t.Fatalf("trainer step --lora-rank 4: exit %d", code)
	}
	ck, err := qwen2.LoadCheckpoint(fixture, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	ad, err := safetensors.Open(filepath.Join(lora, trainer.LoRAWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	const scale = 16.0 / 4
	merged := qwen2.Weights{}
	for k, v := range ck.Weights {
		merged[k] = v
	}
	for _, info := range ad.Tensors() {
		if !strings.HasSuffix(info.Name, ".lora_A.weight") {
			continue
		}
		target := strings.TrimSuffix(strings.TrimPrefix(info.Name, "base_model.model."), ".lora_A.weight")
		_, a, err := ad.Float32s(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := ad.Float32s(strings.TrimSuffix(info.Name, "lora_A.weight") + "lora_B.weight")
		if err != nil {
			t.Fatal(err)
		}
		W := ck.Weights[target+".weight"]
		out, in := int(W.Dims[0]), int(W.Dims[1])
		r := len(a) / in
		base := W.Floats()
		m := make([]float32, len(base))
		for o := range out {
			for i := range in {
				s := 0.0
				for k := range r {
					s += float64(b[o*r+k]) * float64(a[k*in+i])
				}
				m[o*in+i] = float32(float64(base[o*in+i]) + scale*s)
			}
		}
		merged[target+".weight"] = onnx.FloatTensor(W.Dims, m)
	}
	mdir := filepath.Join(dir, "merged")
	if err := qwen2.Save(mdir, ck.Config, merged, 0); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"input_ids":[5,17,300,2,999,41,7,8]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	score := func(model string) []float64 {
		t.Helper()
		out := filepath.Join(dir, filepath.Base(model)+".lp.jsonl")
		if code := run([]string{"logprobs", "--model", model, "--in", in, "--out", out}); code != 0 {
			t.Fatalf("logprobs --model %s: exit %d", model, code)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var row struct{ Logprobs []float64 }
		if err := json.Unmarshal(data, &row); err != nil {
			t.Fatal(err)
		}
		return row.Logprobs
	}
	got, want, bare := score(lora), score(mdir), score(fixture)
	moved := 0.0
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-5 {
			t.Fatalf("token %d: the LoRA checkpoint scores %v, base + (alpha/r)·B·A %v", i, got[i], want[i])
		}
		moved = math.Max(moved, math.Abs(want[i]-bare[i]))
	}
	if moved < 1e-4 {
		t.Fatalf("the adapters move no log-prob by 1e-4 (%.2g): the test cannot tell them from the base", moved)
	}
}
