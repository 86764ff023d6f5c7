package trainer

import (
	"testing"
	"time"

	"github.com/igsearch/igsearch/onnx/ort"
)

// BenchmarkAdamW times the optimiser alone (global norm + in-place AdamW
// over chunks) on IGSEARCH_ADAMW_PARAMS float32 parameters (default 64M)
// in tensors of 16M: the first step (moments page-faulted in) is reported
// as first_s, the mean of the following ones per op.
func BenchmarkAdamW(b *testing.B) {
	initORT(b)
	n := envInt("IGSEARCH_ADAMW_PARAMS", 64<<20)
	const per = 16 << 20
	tr := &Trainer{opts: Options{Optim: DefaultAdamW()}, art: &GradArtifact{}, state: &State{Params: map[string][]float32{}, M: map[string][]float32{}, V: map[string][]float32{}}}
	grads := map[string][]float32{}
	for i := 0; i*per < n; i++ {
		name := string(rune('a' + i))
		size := min(per, n-i*per)
		tr.art.Trainable = append(tr.art.Trainable, Param{Name: name, Shape: []int64{int64(size)}})
		p, g := make([]float32, size), make([]float32, size)
		for j := range p {
			p[j], g[j] = 0.01, 1e-4
		}
		tr.state.Params[name], grads[name] = p, g
		tr.state.M[name], tr.state.V[name] = make([]float32, size), make([]float32, size)
	}
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
	t0 := time.Now()
	if _, err := tr.applyOptimizer(grads); err != nil {
		b.Fatal(err)
	}
	b.Logf("first step (moments paged in): %.2f s", time.Since(t0).Seconds())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.applyOptimizer(grads); err != nil {
			b.Fatal(err)
		}
	}
}
