package ort

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/igsearch/igsearch/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// ortgoEnv is onnxruntime_go's environment (its unexported ortEnv), read here
// only to check that OrtApi::CreateEnv hands the shim that same instance.
//
//go:linkname ortgoEnv github.com/yalue/onnxruntime_go.ortEnv
var ortgoEnv unsafe.Pointer

// TestSessionOptionsLayout fails when onnxruntime_go's SessionOptions stops
// being struct{ o *C.OrtSessionOptions }, which the shim reads with unsafe.
func TestSessionOptionsLayout(t *testing.T) {
	if err := checkSessionOptionsLayout(); err != nil {
		t.Fatal(err)
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	h, err := sessionOptionsHandle(so)
	if err != nil || h == nil {
		t.Fatalf("handle = %p, %v", h, err)
	}
	// That the handle is the live pointer is checked by
	// TestAppendEPDeviceCPU, which writes through it and reads back through
	// onnxruntime_go.
	so.Destroy()
	if _, err := sessionOptionsHandle(so); err == nil || !strings.Contains(err.Error(), "destroyed") {
		t.Fatalf("handle after Destroy: err = %v", err)
	}
}

// TestSharedEnvironment checks that the environment the shim uses is
// onnxruntime_go's, the one plugin providers are registered with.
func TestSharedEnvironment(t *testing.T) {
	err := withEnv(func(api *_Ctype_OrtApi, env *_Ctype_OrtEnv) error {
		if unsafe.Pointer(env) != ortgoEnv || env == nil {
			t.Errorf("CreateEnv gave %p, onnxruntime_go holds %p", env, ortgoEnv)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEPDevicesCPU lists the CPU build's devices: the CPU provider is one.
func TestEPDevicesCPU(t *testing.T) {
	ds, err := EPDevices()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range ds {
		t.Logf("%v metadata=%v options=%v", d, d.Metadata, d.Options)
		if d.EP == cpuEP && d.Hardware == "cpu" && d.Index == 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no %s:0 on cpu among %v", cpuEP, ds)
	}
}

// TestAppendEPDeviceCPU drives the path a CUDA plugin session takes
// (handle, GetEpDevices, SessionOptionsAppendExecutionProvider_V2) with the
// CPU provider, then builds a session from those options and runs it.
func TestAppendEPDeviceCPU(t *testing.T) {
	so, err := sessionOptions(Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := appendEPDevice(so, cpuEP, 0, map[string]string{"igsearch_probe": "1"}); err != nil {
		t.Fatal(err)
	}
	// V2 stores provider options as session config entries
	// ep.<provider>.<key>: proof that it wrote to our options.
	if got, err := so.GetSessionConfigEntry("ep.cpuexecutionprovider.igsearch_probe"); got != "1" {
		t.Errorf("provider option after V2 append = %q, %v; want 1", got, err)
	}
	g := onnx.NewGraph("v2")
	x := g.Input("x", onnx.Float, onnx.Sym("n"))
	g.Output("y", g.Mul(x, g.Exp(x)))
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ins, outs := graphIO(g)
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(b, names(ins), names(outs), so)
	if err != nil {
		t.Fatalf("session with the V2-appended CPU provider: %v", err)
	}
	sess := newSession("v2", s, ins, outs)
	defer sess.Close()
	xs := []float32{-1, 0, 0.5, 2}
	xt, err := NewTensor([]int64{4}, xs)
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	out, err := sess.Run(map[string]*Tensor{"x": xt})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	y, err := Values[float32](out["y"])
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range xs {
		if want := float64(v) * math.Exp(float64(v)); math.Abs(float64(y[i])-want) > 1e-6 {
			t.Fatalf("y[%d] = %v, want %v", i, y[i], want)
		}
	}
}

// TestAppendEPDeviceMissing asks for devices the CPU build does not have.
func TestAppendEPDeviceMissing(t *testing.T) {
	so, err := sessionOptions(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	for _, c := range []struct {
		ep    string
		index int
	}{{cudaEP, 0}, {cpuEP, 3}} {
		err := appendEPDevice(so, c.ep, c.index, nil)
		if err == nil || !strings.Contains(err.Error(), "CPUExecutionProvider:0 on cpu") {
			t.Errorf("%s:%d: err = %v, want one listing the CPU device", c.ep, c.index, err)
		}
	}
}

func TestLibraryHint(t *testing.T) {
	if h := libraryHint("libcuda.so.1"); !strings.Contains(h, "driver") {
		t.Errorf("libcuda hint %q", h)
	}
	if h := libraryHint("libcublasLt.so.13"); !strings.Contains(h, "CUDA 13") {
		t.Errorf("libcublasLt hint %q", h)
	}
	if m := missingLibraries(Library()); m != "" {
		t.Errorf("the loaded library misses %v", m)
	}
}

// NewSessionProfiledForTest is NewSession with ONNX Runtime's profiler on:
// closing the session writes prefix_<time>.json, whose node events name the
// execution provider that ran each node (see ProfileProviders).
func NewSessionProfiledForTest(path string, opts Options, prefix string) (*Session, error) {
	if err := ready(); err != nil {
		return nil, err
	}
	m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true})
	if err != nil {
		return nil, err
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if err := so.EnableProfiling(prefix); err != nil {
		return nil, err
	}
	ins, outs := graphIO(m.Graph)
	s, err := ortgo.NewDynamicAdvancedSession(path, names(ins), names(outs), so)
	if err != nil {
		return nil, err
	}
	return newSession(path, s, ins, outs), nil
}

// ProfileProviders counts the node-kernel events of an ONNX Runtime profile
// by execution provider.
func ProfileProviders(profile []byte) (map[string]int, error) {
	var events []struct {
		Cat  string `json:"cat"`
		Name string `json:"name"`
		Args struct {
			Provider string `json:"provider"`
		} `json:"args"`
	}
	if err := json.Unmarshal(profile, &events); err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, e := range events {
		if e.Cat == "Node" && strings.HasSuffix(e.Name, "_kernel_time") {
			n[e.Args.Provider]++
		}
	}
	return n, nil
}
