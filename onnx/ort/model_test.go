package ort_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

const tinyQwen2 = "../../testdata/models/tiny-qwen2"

// TestTinyQwen2Export loads the torch.onnx export, lists its I/O, runs the
// reference batch with an empty KV cache and compares the logits; then it
// runs the same model re-encoded by our writer.
func TestTinyQwen2Export(t *testing.T) {
	path := filepath.Join(tinyQwen2, "model.onnx")
	m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true})
	if err != nil {
		t.Fatal(err)
	}
	var ins, outs []string
	for _, v := range m.Graph.Inputs {
		ins = append(ins, v.String())
	}
	for _, v := range m.Graph.Outputs {
		outs = append(outs, v.String())
	}
	wantIn := "input_ids:int64[batch_size,sequence_length] attention_mask:int64[batch_size,total_sequence_length] position_ids:int64[batch_size,sequence_length]"
	for i := 0; i < 2; i++ {
		for _, kv := range []string{"key", "value"} {
			wantIn += fmt.Sprintf(" past_key_values.%d.%s:float32[batch_size,2,past_sequence_length,16]", i, kv)
		}
	}
	wantOut := "logits:float32[batch_size,sequence_length,1024]"
	for i := 0; i < 2; i++ {
		for _, kv := range []string{"key", "value"} {
			wantOut += fmt.Sprintf(" present.%d.%s:float32[batch_size,2,total_sequence_length,16]", i, kv)
		}
	}
	if got := strings.Join(ins, " "); got != wantIn {
		t.Errorf("inputs\n got %s\nwant %s", got, wantIn)
	}
	if got := strings.Join(outs, " "); got != wantOut {
		t.Errorf("outputs\n got %s\nwant %s", got, wantOut)
	}
	if m.Opsets[""] != 14 || m.ProducerName != "pytorch" {
		t.Errorf("opsets %v producer %q", m.Opsets, m.ProducerName)
	}

	var ref struct {
		InputIDs      [][]int64     `json:"input_ids"`
		AttentionMask [][]int64     `json:"attention_mask"`
		PositionIDs   [][]int64     `json:"position_ids"`
		Logits        [][][]float64 `json:"logits"`
	}
	b, err := os.ReadFile(filepath.Join(tinyQwen2, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	B, T := int64(len(ref.InputIDs)), int64(len(ref.InputIDs[0]))
	check := func(s *ort.Session) {
		t.Helper()
		in := map[string]*ort.Tensor{
			"input_ids":      tensor(t, []int64{B, T}, slices.Concat(ref.InputIDs...)),
			"attention_mask": tensor(t, []int64{B, T}, slices.Concat(ref.AttentionMask...)),
			"position_ids":   tensor(t, []int64{B, T}, slices.Concat(ref.PositionIDs...)),
		}
		for i := 0; i < 2; i++ {
			for _, kv := range []string{"key", "value"} {
				in[fmt.Sprintf("past_key_values.%d.%s", i, kv)] = tensor(t, []int64{B, 2, 0, 16}, []float32{})
			}
		}
		defer func() {
			for _, x := range in {
				x.Destroy()
			}
		}()
		out, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Destroy()
		if got := out["present.1.value"].Shape(); !slices.Equal(got, []int64{B, 2, T, 16}) {
			t.Errorf("present shape %v", got)
		}
		logits := values[float32](t, out["logits"])
		worst := 0.0
		for b := range B {
			for p := range T {
				if ref.AttentionMask[b][p] == 0 {
					continue
				}
				for v := range 1024 {
					d := math.Abs(float64(logits[(b*T+p)*1024+int64(v)]) - ref.Logits[b][p][v])
					worst = math.Max(worst, d)
				}
			}
		}
		if worst > 1e-4 {
			t.Errorf("logits differ from the reference by %g", worst)
		}
	}
	s, err := ort.NewSession(path, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Inputs()) != 7 || s.Inputs()[3].Shape.String() != "[batch_size,2,past_sequence_length,16]" {
		t.Errorf("session inputs %v", s.Inputs())
	}
	check(s)
	s.Close()

	// Our decoder and encoder round-trip the export.
	full, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err = ort.NewSessionFromGraph(full.Graph, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	check(s)
	s.Close()
}

// mlp is a small graph with weights large enough to go to external data.
func mlp() *onnx.Graph {
	g := onnx.NewGraph("mlp")
	x := g.Input("x", onnx.Float, onnx.Sym("batch"), onnx.D(32))
	w1 := make([]float32, 32*64)
	for i := range w1 {
		w1[i] = float32(math.Sin(float64(i)))
	}
	w2 := make([]float32, 64*8)
	for i := range w2 {
		w2[i] = float32(math.Cos(float64(i)))
	}
	h := g.Relu(g.MatMul(x, g.Initializer("w1", onnx.FloatTensor([]int64{32, 64}, w1))))
	g.Output("y", g.Softmax(g.MatMul(h, g.Initializer("w2", onnx.FloatTensor([]int64{64, 8}, w2))), -1))
	return g
}

func TestSaveExternalDataRun(t *testing.T) {
	g := mlp()
	xs := make([]float32, 3*32)
	for i := range xs {
		xs[i] = float32(i%7) - 3
	}
	x := tensor(t, []int64{3, 32}, xs)
	defer x.Destroy()
	want := values[float32](t, run(t, g, map[string]*ort.Tensor{"x": x})["y"])

	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := g.Save(path, onnx.SaveOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() > 4096 {
		t.Fatalf("model file: %v, %v (weights should be external)", st, err)
	}
	runFile := func(s *ort.Session, err error) []float32 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, err := s.Run(map[string]*ort.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Destroy()
		return values[float32](t, out["y"])
	}
	near(t, "from file", runFile(ort.NewSession(path, ort.Options{IntraOpThreads: 1})), want, 0)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "from bytes", runFile(ort.NewSessionFromBytes(b, ort.Options{IntraOpThreads: 1, ExternalDataDir: dir})), want, 0)

	// Re-loaded with our reader and run again.
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "reloaded", runFile(ort.NewSessionFromGraph(m.Graph, ort.Options{IntraOpThreads: 1})), want, 0)
}

func TestRunWithPreBoundOutput(t *testing.T) {
	g := onnx.NewGraph("pre")
	x := g.Input("x", onnx.Float, onnx.Sym("n"))
	g.Output("y", g.Mul(x, x))
	g.Output("n", g.Shape(x))
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := tensor(t, []int64{3}, []float32{1, 2, 3})
	defer in.Destroy()
	buf := make([]float32, 3)
	y := tensor(t, []int64{3}, buf)
	defer y.Destroy()
	out := ort.Outputs{"y": y}
	if err := s.RunWith(map[string]*ort.Tensor{"x": in}, out); err != nil {
		t.Fatal(err)
	}
	if out["y"] != y || !slices.Equal(buf, []float32{1, 4, 9}) {
		t.Errorf("pre-bound output: %v", buf)
	}
	if got := values[int64](t, out["n"]); !slices.Equal(got, []int64{3}) {
		t.Errorf("allocated output n = %v", got)
	}
	out["n"].Destroy()
}

func TestFloat16(t *testing.T) {
	g := onnx.NewGraph("half")
	x := g.Input("x", onnx.Float16, onnx.D(4))
	g.Output("f32", g.Cast(x, onnx.Float))
	g.Output("f16", g.Add(x, x))
	in, err := ort.NewFloat16Tensor([]int64{4}, []uint16{
		onnx.Float32ToFloat16(1), onnx.Float32ToFloat16(-2.5), onnx.Float32ToFloat16(0.1), onnx.Float32ToFloat16(1000)})
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, g, map[string]*ort.Tensor{"x": in})
	near(t, "float16→float32", values[float32](t, out["f32"]), []float32{1, -2.5, 0.0999755859375, 1000}, 0)
	bits, err := out["f16"].Float16s()
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for _, b := range bits {
		got = append(got, onnx.Float16ToFloat32(b))
	}
	near(t, "float16 add", got, []float32{2, -5, 0.199951171875, 2000}, 0)

	// A float16 output of dynamic shape cannot be allocated by
	// onnxruntime_go: the error says how to get it.
	g = onnx.NewGraph("half-dyn")
	g.Output("y", g.Neg(g.Input("x", onnx.Float16, onnx.Sym("n"))))
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in2, _ := ort.NewFloat16Tensor([]int64{1}, []uint16{0x3c00})
	defer in2.Destroy()
	if _, err := s.Run(map[string]*ort.Tensor{"x": in2}); err == nil || !strings.Contains(err.Error(), "pre-bind") {
		t.Errorf("dynamic float16 output: err = %v", err)
	}
	y, _ := ort.NewFloat16Tensor([]int64{1}, []uint16{0})
	defer y.Destroy()
	if err := s.RunWith(map[string]*ort.Tensor{"x": in2}, ort.Outputs{"y": y}); err != nil {
		t.Fatal(err)
	}
	if bits, _ := y.Float16s(); bits[0] != 0xbc00 {
		t.Errorf("pre-bound float16 output %#x, want 0xbc00", bits[0])
	}
}

func TestRunErrors(t *testing.T) {
	g := onnx.NewGraph("errs")
	g.Output("y", g.Neg(g.Input("x", onnx.Float, onnx.Sym("n"))))
	s, err := ort.NewSessionFromGraph(g, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := tensor(t, []int64{1}, []float32{1})
	d := tensor(t, []int64{1}, []float64{1})
	defer f.Destroy()
	defer d.Destroy()
	for _, c := range []struct {
		in   map[string]*ort.Tensor
		want string
	}{
		{map[string]*ort.Tensor{}, "missing inputs x"},
		{map[string]*ort.Tensor{"x": f, "z": f}, `unknown input "z"`},
		{map[string]*ort.Tensor{"x": d}, "is float64, the model wants float32"},
	} {
		if _, err := s.Run(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
	if _, err := ort.NewSessionFromBytes([]byte("garbage"), ort.Options{}); err == nil {
		t.Error("garbage model: no error")
	}
	if _, err := ort.NewTensor([]int64{2, 2}, []float32{1}); err == nil {
		t.Error("short tensor data: no error")
	}
	x := tensor(t, []int64{1}, []int64{1})
	x.Destroy()
	if _, err := ort.Values[int64](x); err == nil {
		t.Error("read after Destroy: no error")
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]ort.Device{"cpu": ort.CPU, "": ort.CPU, "cuda": {CUDA: true}, "CUDA:3": {CUDA: true, ID: 3}} {
		if got, err := ort.ParseDevice(in); err != nil || got != want {
			t.Errorf("ParseDevice(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"tpu", "cuda:x", "cuda:-1"} {
		if _, err := ort.ParseDevice(bad); err == nil {
			t.Errorf("ParseDevice(%q): no error", bad)
		}
	}
	if s := (ort.Device{CUDA: true, ID: 1}).String(); s != "cuda:1" {
		t.Errorf("String %q", s)
	}
}

func TestInitIdempotent(t *testing.T) {
	lib := ort.Library()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := ort.Init(lib); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	other := filepath.Join(t.TempDir(), "libother.so")
	os.WriteFile(other, []byte("x"), 0o644)
	if err := ort.Init(other); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("second library: err = %v", err)
	}
}

func TestMissingLibrary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere", "libonnxruntime.so")
	err := ort.Init(missing)
	if !errors.Is(err, ort.ErrNoLibrary) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("Init(missing) = %v", err)
	}
	t.Setenv(ort.LibraryEnv, missing)
	_, err = ort.FindLibrary("", false)
	if !errors.Is(err, ort.ErrNoLibrary) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("FindLibrary with $%s missing = %v", ort.LibraryEnv, err)
	}
	t.Setenv(ort.LibraryEnv, "")
	t.Setenv(ort.CacheEnv, t.TempDir())
	_, err = ort.FindLibrary("", true)
	if !errors.Is(err, ort.ErrNoLibrary) || !strings.Contains(err.Error(), "make setup-cuda") {
		t.Errorf("FindLibrary(cuda) without the CUDA build = %v", err)
	}
}

// Tests that need a fresh process (one library per process) re-run the test
// binary with childEnv set; TestMain then runs only the child's function.
const childEnv = "IGSEARCH_ORT_TEST_CHILD"

func runChild(t *testing.T, name string, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+name)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", name, err, out)
	}
	return string(out)
}

// children are the child-process checks, by name; each returns an error
// when the check fails.
var children = map[string]func() error{
	"invalid-library": func() error {
		lib := os.Getenv("IGSEARCH_TEST_LIB")
		err := ort.Init(lib)
		if err == nil || !strings.Contains(err.Error(), lib) || !strings.Contains(err.Error(), "make setup") {
			return fmt.Errorf("Init(invalid) = %v", err)
		}
		fmt.Println("ok:", err)
		return nil
	},
	"cuda-library": func() error {
		if err := ort.Init(ort.CUDALibraryPath()); err != nil {
			return err
		}
		g := onnx.NewGraph("c")
		g.Output("y", g.Neg(g.Input("x", onnx.Float, onnx.D(2))))
		s, err := ort.NewSessionFromGraph(g, ort.Options{Device: ort.Device{CUDA: true}})
		if err != nil {
			if !errors.Is(err, ort.ErrNoCUDA) {
				return fmt.Errorf("CUDA session: %v, want ErrNoCUDA", err)
			}
			fmt.Println("no CUDA here:", err)
			return nil
		}
		defer s.Close()
		x, _ := ort.NewTensor([]int64{2}, []float32{1, -2})
		out, err := s.Run(map[string]*ort.Tensor{"x": x})
		if err != nil {
			return err
		}
		y, _ := ort.Values[float32](out["y"])
		if !slices.Equal(y, []float32{-1, 2}) {
			return fmt.Errorf("CUDA result %v", y)
		}
		fmt.Println("ran on CUDA")
		return nil
	},
}

func TestInvalidLibrary(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(lib, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(runChild(t, "invalid-library", "IGSEARCH_TEST_LIB="+lib))
}

// TestCUDALibrary loads the CUDA build from `make setup-cuda` (skipped when
// absent) and asks for a CUDA session: on a machine without a GPU or CUDA
// libraries that must be ErrNoCUDA; with one, the graph must run.
func TestCUDALibrary(t *testing.T) {
	if _, err := os.Stat(ort.CUDALibraryPath()); err != nil {
		t.Skipf("no CUDA build (%v); run make setup-cuda", err)
	}
	t.Log(runChild(t, "cuda-library"))
}
