package qwen2

// A minimal local adapter over onnxruntime_go for these tests, so that they
// depend only on the graph serialiser, not on the onnx/ort session API.

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
	ortgo "github.com/yalue/onnxruntime_go"
)

var (
	ortOnce sync.Once
	ortErr  error
)

// needORT initialises ONNX Runtime once, skipping the test when the library
// is not installed (`make setup`).
func needORT(t testing.TB) {
	t.Helper()
	ortOnce.Do(func() {
		lib, err := ort.FindLibrary("", false)
		if err != nil {
			ortErr = err
			return
		}
		if !ortgo.IsInitialized() {
			ortgo.SetSharedLibraryPath(lib)
			ortErr = ortgo.InitializeEnvironment()
		}
	})
	if errors.Is(ortErr, ort.ErrNoLibrary) {
		t.Skip(ortErr)
	}
	if ortErr != nil {
		t.Fatal(ortErr)
	}
}

type testSession struct {
	s         *ortgo.DynamicAdvancedSession
	ins, outs []string
}

func newTestSession(t testing.TB, g *onnx.Graph, threads int) *testSession {
	t.Helper()
	needORT(t)
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return newTestSessionBytes(t, b, inputNames(g), outputNames(g), threads)
}

// newTestSessionBytes makes a session from model bytes, or from the file
// path when model is nil (needed for external data).
func newTestSessionBytes(t testing.TB, model []byte, ins, outs []string, threads int) *testSession {
	return newTestSessionFrom(t, "", model, ins, outs, threads)
}

func newTestSessionFrom(t testing.TB, path string, model []byte, ins, outs []string, threads int) *testSession {
	t.Helper()
	needORT(t)
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if threads > 0 {
		opts.SetIntraOpNumThreads(threads)
		opts.SetInterOpNumThreads(1)
	}
	// No busy-waiting: the cores are shared, and benchmarks count CPU time.
	opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0")
	var s *ortgo.DynamicAdvancedSession
	if path != "" {
		s, err = ortgo.NewDynamicAdvancedSession(path, ins, outs, opts)
	} else {
		s, err = ortgo.NewDynamicAdvancedSessionWithONNXData(model, ins, outs, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts := &testSession{s: s, ins: ins, outs: outs}
	t.Cleanup(func() { s.Destroy() })
	return ts
}

func inputNames(g *onnx.Graph) []string {
	var out []string
	for _, v := range g.Inputs {
		out = append(out, v.Name)
	}
	return out
}

func outputNames(g *onnx.Graph) []string {
	var out []string
	for _, v := range g.Outputs {
		out = append(out, v.Name)
	}
	return out
}

// tensor is a host tensor for the adapter: float32 or int64 data.
type tensor struct {
	shape []int64
	f     []float32
	i     []int64
}

func (s *testSession) run(inputs map[string]tensor) (map[string]tensor, error) {
	in := make([]ortgo.Value, len(s.ins))
	for i, name := range s.ins {
		x, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("missing input %s", name)
		}
		var v ortgo.Value
		var err error
		if x.i != nil {
			v, err = ortgo.NewTensor(ortgo.NewShape(x.shape...), x.i)
		} else {
			data := x.f
			if data == nil {
				data = []float32{}
			}
			v, err = ortgo.NewTensor(ortgo.NewShape(x.shape...), data)
		}
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		defer v.Destroy()
		in[i] = v
	}
	out := make([]ortgo.Value, len(s.outs))
	if err := s.s.Run(in, out); err != nil {
		return nil, err
	}
	res := map[string]tensor{}
	for i, name := range s.outs {
		switch v := out[i].(type) {
		case *ortgo.Tensor[float32]:
			res[name] = tensor{shape: v.GetShape(), f: append([]float32{}, v.GetData()...)}
		case *ortgo.Tensor[int64]:
			res[name] = tensor{shape: v.GetShape(), i: append([]int64{}, v.GetData()...)}
		default:
			return nil, fmt.Errorf("output %s: unexpected type %T", name, out[i])
		}
		out[i].Destroy()
	}
	return res, nil
}
