package grad

import (
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// TestEmbeddingGradientThreads checks the embedding gradient (a Gather over
// repeated ids) on several intra-op threads against exact counts. ONNX
// Runtime's CPU ScatterND-add loses updates to repeated indices across
// threads, so this fails, differently on each run, if the rule emits it.
func TestEmbeddingGradientThreads(t *testing.T) {
	initORT(t)
	const vocab, dim, n = 50, 64, 4096
	g := onnx.NewGraph("embedding_threads")
	emb := g.Input("emb", onnx.Float, onnx.D(vocab), onnx.D(dim))
	ids := g.Input("ids", onnx.Int64, onnx.Sym("n"))
	loss := g.ReduceSum(g.Gather(emb, ids, 0), false)
	g.Output("loss", loss)
	grads, err := Backward(g, loss, []*onnx.Value{emb}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("grad", grads[0])
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSessionFromBytes(model, ort.Options{IntraOpThreads: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	idv := make([]int64, n)
	count := make([]float32, vocab)
	for i := range idv {
		idv[i] = int64(i*7) % vocab
		count[idv[i]]++
	}
	for run := 0; run < 5; run++ {
		e, _ := ort.NewTensor([]int64{vocab, dim}, make([]float32, vocab*dim))
		i, _ := ort.NewTensor([]int64{n}, idv)
		out, err := s.Run(map[string]*ort.Tensor{"emb": e, "ids": i})
		e.Destroy()
		i.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ort.Values[float32](out["grad"])
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range got {
			if want := count[k/dim]; v != want {
				t.Fatalf("run %d: d emb[%d][%d] = %v, want %v (the token's count)", run, k/dim, k%dim, v, want)
			}
		}
		out.Destroy()
	}
}
