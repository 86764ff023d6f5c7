package grad

import (
	"fmt"
	"os"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// initORT loads ONNX Runtime for the finite-difference checks; without a
// library the checks skip, unless IGSEARCH_REQUIRE_ORT is set (CI).
func initORT(t testing.TB) {
	t.Helper()
	if _, err := ort.InitDefault("", ort.CPU); err != nil {
		if os.Getenv("IGSEARCH_REQUIRE_ORT") != "" {
			t.Fatal(err)
		}
		t.Skipf("ONNX Runtime: %v", err)
	}
}

// feed is one named input tensor: data is []float64, []float32 or []int64.
type feed struct {
	name string
	dims []int64
	data any
}

// testSession runs one serialised model on one thread.
type testSession struct{ s *ort.Session }

// openSession loads model. noOpt turns ORT's graph optimisations off: some
// fusions (QuickGelu from x·sigmoid(x)) have float32 kernels only and break
// float64 graphs.
func openSession(t testing.TB, model []byte, noOpt bool) *testSession {
	t.Helper()
	initORT(t)
	s, err := ort.NewSessionFromBytes(model, ort.Options{IntraOpThreads: 1, InterOpThreads: 1, DisableOptimizations: noOpt})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &testSession{s: s}
}

// run returns every output converted to float64, by name.
func (s *testSession) run(feeds []feed) (map[string][]float64, error) {
	ins := map[string]*ort.Tensor{}
	defer func() {
		for _, v := range ins {
			v.Destroy()
		}
	}()
	for _, f := range feeds {
		var v *ort.Tensor
		var err error
		switch d := f.data.(type) {
		case []float64:
			v, err = ort.NewTensor(f.dims, d)
		case []float32:
			v, err = ort.NewTensor(f.dims, d)
		case []int64:
			v, err = ort.NewTensor(f.dims, d)
		default:
			err = fmt.Errorf("feed %s: type %T", f.name, f.data)
		}
		if err != nil {
			return nil, err
		}
		ins[f.name] = v
	}
	outs, err := s.s.Run(ins)
	if err != nil {
		return nil, err
	}
	defer outs.Destroy()
	res := map[string][]float64{}
	for name, o := range outs {
		switch o.DType() {
		case onnx.Double:
			v, err := ort.Values[float64](o)
			if err != nil {
				return nil, err
			}
			res[name] = v
		case onnx.Float:
			v, err := ort.Values[float32](o)
			if err != nil {
				return nil, err
			}
			for _, x := range v {
				res[name] = append(res[name], float64(x))
			}
		default:
			return nil, fmt.Errorf("output %s: dtype %s", name, o.DType())
		}
	}
	return res, nil
}
