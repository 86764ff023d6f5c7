package grad

// Temporary: runs graphs through onnxruntime_go directly until onnx/ort has
// sessions.

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
	rt "github.com/yalue/onnxruntime_go"
)

var envOnce sync.Once
var envErr error

func initORT(t testing.TB) {
	envOnce.Do(func() {
		lib, err := ort.FindLibrary("", false)
		if err != nil {
			envErr = err
			return
		}
		rt.SetSharedLibraryPath(lib)
		envErr = rt.InitializeEnvironment()
	})
	if envErr != nil {
		if os.Getenv("IGSEARCH_REQUIRE_ORT") != "" {
			t.Fatal(envErr)
		}
		t.Skipf("ONNX Runtime: %v", envErr)
	}
}

// feed is one named input tensor: data is []float64, []float32 or []int64.
type feed struct {
	name string
	dims []int64
	data any
}

type testSession struct {
	s    *rt.DynamicAdvancedSession
	outs []string
}

func openSession(t testing.TB, model []byte, inputs, outputs []string) *testSession {
	initORT(t)
	opts, err := rt.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	opts.SetIntraOpNumThreads(1)
	opts.SetInterOpNumThreads(1)
	s, err := rt.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	t.Cleanup(func() { s.Destroy() })
	return &testSession{s: s, outs: outputs}
}

// run returns every output converted to float64.
func (s *testSession) run(feeds []feed) ([][]float64, error) {
	var ins []rt.Value
	defer func() {
		for _, v := range ins {
			v.Destroy()
		}
	}()
	for _, f := range feeds {
		var v rt.Value
		var err error
		switch d := f.data.(type) {
		case []float64:
			if len(f.dims) == 0 {
				v, err = rt.NewScalar(d[0])
				break
			}
			v, err = rt.NewTensor(rt.NewShape(f.dims...), d)
		case []float32:
			v, err = rt.NewTensor(rt.NewShape(f.dims...), d)
		case []int64:
			v, err = rt.NewTensor(rt.NewShape(f.dims...), d)
		default:
			err = fmt.Errorf("feed %s: type %T", f.name, f.data)
		}
		if err != nil {
			return nil, err
		}
		ins = append(ins, v)
	}
	outs := make([]rt.Value, len(s.outs))
	if err := s.s.Run(ins, outs); err != nil {
		return nil, err
	}
	res := make([][]float64, len(outs))
	for i, o := range outs {
		switch tt := o.(type) {
		case *rt.Tensor[float64]:
			res[i] = append([]float64(nil), tt.GetData()...)
		case *rt.Tensor[float32]:
			for _, x := range tt.GetData() {
				res[i] = append(res[i], float64(x))
			}
		default:
			return nil, fmt.Errorf("output %s: type %T", s.outs[i], o)
		}
		o.Destroy()
	}
	return res, nil
}
