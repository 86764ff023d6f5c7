package qwen2

import (
	"math"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

// TestLoadWeightsIntoBF16Shards writes a bf16 checkpoint in two shards (the
// Hub's layout) and checks that LoadWeightsInto gives, in the memory it
// hands out, exactly the float32 values of the independent path
// (LoadCheckpoint, which converts through safetensors.ToFloat32), and that
// the bf16 values are the float32 draws of Init rounded to bf16.
func TestLoadWeightsIntoBF16Shards(t *testing.T) {
	cfg := TinyConfig()
	dir := t.TempDir()
	if err := Save(dir, cfg, InitAs(cfg, 7, onnx.BFloat16), 40_000); err != nil {
		t.Fatal(err)
	}
	ref, err := LoadCheckpoint(dir, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var block []byte
	var handed int
	w, err := LoadWeightsInto(dir, cfg, onnx.Float, func(n int) ([]byte, error) {
		handed += n
		block = make([]byte, n)
		return block, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, s := range WeightSizes(cfg, onnx.Float) {
		want += s
	}
	if int64(handed) != want {
		t.Errorf("alloc handed %d bytes, want %d", handed, want)
	}
	f32 := Init(cfg, 7)
	for _, p := range Params(cfg) {
		got, exp := w[p.Name].Floats(), ref.Weights[p.Name].Floats()
		orig := f32[p.Name].Floats()
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("%s[%d] = %v, LoadCheckpoint says %v", p.Name, i, got[i], exp[i])
			}
			if d := math.Abs(float64(got[i] - orig[i])); d > math.Abs(float64(orig[i]))/256 {
				t.Fatalf("%s[%d] = %v is not %v rounded to bf16", p.Name, i, got[i], orig[i])
			}
		}
	}
}
