package trainer

import (
	"context"
	"testing"
	"time"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// BenchmarkAdamW times the optimiser alone (global norm + in-place AdamW
// over chunks of the resident state) on IGSEARCH_ADAMW_PARAMS float32
// parameters (default 64M) in tensors of 16M: the first step (moments
// page-faulted in) is reported as first_s, the mean of the following ones
// per op.
func BenchmarkAdamW(b *testing.B) {
	initORT(b)
	n := envInt("IGSEARCH_ADAMW_PARAMS", 64<<20)
	const per = 16 << 20
	tr := &Trainer{opts: Options{Optim: DefaultAdamW()}, art: &GradArtifact{}, state: &State{}}
	var err error
	sess := ort.Options{SharedArena: true}
	if tr.sumSq, err = ort.NewSessionFromGraph(BuildSumSquaresGraph(), sess); err != nil {
		b.Fatal(err)
	}
	if tr.adamw, err = ort.NewSessionFromGraph(BuildAdamWGraph(), sess); err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	defer func(c int) { optimChunk = c }(optimChunk)
	optimChunk = envInt("IGSEARCH_ADAMW_CHUNK", optimChunk)
	ctx := context.Background()
	r := &resident{params: map[string]*ort.Tensor{}, grads: map[string]*ort.Tensor{}, m: map[string]*ort.Tensor{}, v: map[string]*ort.Tensor{}, scalars: map[string]*ort.Tensor{}, onBlock: true}
	tr.res = r
	if r.zero, err = tr.upload(ctx, tr.adamw, optGrad, []int64{1 << 18}, make([]float32, 1<<18)); err != nil {
		b.Fatal(err)
	}
	for _, x := range []**ort.Tensor{&r.zero64, &r.sumSq} {
		if *x, err = tr.upload64(ctx, tr.sumSq, optAcc, 0); err != nil {
			b.Fatal(err)
		}
	}
	for name := range optimScalars(AdamWConfig{}, 1, 1) {
		if r.scalars[name], err = tr.adamw.Alloc(name, onnx.Float, nil); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i*per < n; i++ {
		name := string(rune('a' + i))
		size := min(per, n-i*per)
		tr.art.Trainable = append(tr.art.Trainable, Param{Name: name, Shape: []int64{int64(size)}})
		p, g := make([]float32, size), make([]float32, size)
		for j := range p {
			p[j], g[j] = 0.01, 1e-4
		}
		for _, x := range []struct {
			dst   map[string]*ort.Tensor
			input string
			data  []float32
		}{{r.params, optParam, p}, {r.grads, optGrad, g}, {r.m, optM, make([]float32, size)}, {r.v, optV, make([]float32, size)}} {
			if x.dst[name], err = tr.upload(ctx, tr.adamw, x.input, []int64{int64(size)}, x.data); err != nil {
				b.Fatal(err)
			}
		}
	}
	t0 := time.Now()
	if _, err := tr.applyOptimizer(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("first step (moments paged in): %.2f s", time.Since(t0).Seconds())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.applyOptimizer(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
