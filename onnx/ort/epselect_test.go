package ort_test

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
)

// CUDALibEnv points the CUDA tests at a CUDA build of ONNX Runtime other than
// the one `make setup-cuda` caches.
const cudaLibEnv = "IGSEARCH_ORT_CUDA_LIB"

// requireCUDAEnv, set to 1 (scripts/cuda-check.sh does), turns "no usable
// CUDA here" from a logged skip into a failure.
const requireCUDAEnv = "IGSEARCH_REQUIRE_CUDA"

// cudaDeviceEnv selects the device for the CUDA checks (a --device value,
// default "cuda").
const cudaDeviceEnv = "IGSEARCH_TEST_CUDA_DEVICE"

func cudaLibrary() string {
	if p := os.Getenv(cudaLibEnv); p != "" {
		return p
	}
	return ort.CUDALibraryPath()
}

func init() {
	children["cuda-tiny-qwen2"] = cudaTinyQwen2
}

// TestCUDATinyQwen2 runs the tiny-qwen2 torch export on the CUDA build
// (from $IGSEARCH_ORT_CUDA_LIB or `make setup-cuda`) in a child process.
// Without a GPU it checks that the session fails with ErrNoCUDA naming what
// is missing; with one, that the logits match the reference within 1e-4 and
// that ONNX Runtime's profile shows the CUDA provider running the model.
func TestCUDATinyQwen2(t *testing.T) {
	lib := cudaLibrary()
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv(requireCUDAEnv) == "1" {
			t.Fatalf("no CUDA build of ONNX Runtime (%v) and $%s=1", err, requireCUDAEnv)
		}
		t.Skipf("needs the CUDA build of ONNX Runtime, which CI does not install (%v): run `make setup-cuda` or set $%s", err, cudaLibEnv)
	}
	t.Log(runChild(t, "cuda-tiny-qwen2", "IGSEARCH_TEST_PROFILE_DIR="+t.TempDir()))
}

// cudaTinyQwen2 is the child of TestCUDATinyQwen2.
func cudaTinyQwen2() error {
	lib := cudaLibrary()
	if err := ort.Init(lib); err != nil {
		return err
	}
	devName := os.Getenv(cudaDeviceEnv)
	if devName == "" {
		devName = "cuda"
	}
	dev, err := ort.ParseDevice(devName)
	if err != nil {
		return err
	}
	if !dev.CUDA {
		return fmt.Errorf("$%s=%s is not a CUDA device", cudaDeviceEnv, devName)
	}
	profile := filepath.Join(os.Getenv("IGSEARCH_TEST_PROFILE_DIR"), "cuda")
	// TF32 matmuls would cost the 1e-4 parity; the option also checks that
	// provider options reach the plugin.
	opts := ort.Options{Device: dev, CUDA: map[string]string{"use_tf32": "0"}}
	s, err := ort.NewSessionProfiledForTest(filepath.Join(tinyQwen2, "model.onnx"), opts, profile)
	if err != nil {
		if !errors.Is(err, ort.ErrNoCUDA) {
			return fmt.Errorf("CUDA session: %v, want success or ErrNoCUDA", err)
		}
		if !strings.Contains(err.Error(), "missing libraries") && !strings.Contains(err.Error(), "cannot be selected") {
			return fmt.Errorf("ErrNoCUDA does not say what is missing: %v", err)
		}
		if os.Getenv(requireCUDAEnv) == "1" {
			return fmt.Errorf("$%s=1 but: %v", requireCUDAEnv, err)
		}
		fmt.Println("no usable CUDA here (not a failure without a GPU):", err)
		return nil
	}
	devs, err := ort.EPDevices()
	if err != nil {
		return err
	}
	fmt.Printf("execution-provider devices: %v\n", devs)
	worst, err := tinyQwen2Logits(s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if worst > 1e-4 {
		return fmt.Errorf("%s: logits differ from the reference by %g, want ≤ 1e-4", dev, worst)
	}
	files, _ := filepath.Glob(profile + "*.json")
	if len(files) != 1 {
		return fmt.Errorf("profile %s*.json: found %v", profile, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	byEP, err := ort.ProfileProviders(b)
	if err != nil {
		return fmt.Errorf("profile %s: %v", files[0], err)
	}
	if byEP["CUDAExecutionProvider"] == 0 {
		return fmt.Errorf("%s: no node ran on the CUDA provider (kernels by provider: %v)", dev, byEP)
	}
	fmt.Printf("%s: tiny-qwen2 logits within %.3g of the reference; kernels by provider: %v\n", dev, worst, byEP)
	return nil
}

// tinyQwen2Logits runs the reference batch of tiny-qwen2 with an empty KV
// cache and returns the largest absolute logit difference from
// reference.json at unpadded positions.
func tinyQwen2Logits(s *ort.Session) (float64, error) {
	var ref struct {
		InputIDs      [][]int64     `json:"input_ids"`
		AttentionMask [][]int64     `json:"attention_mask"`
		PositionIDs   [][]int64     `json:"position_ids"`
		Logits        [][][]float64 `json:"logits"`
	}
	b, err := os.ReadFile(filepath.Join(tinyQwen2, "reference.json"))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		return 0, err
	}
	B, T := int64(len(ref.InputIDs)), int64(len(ref.InputIDs[0]))
	in := ort.Outputs{}
	defer in.Destroy()
	add := func(name string, shape []int64, data any) error {
		var x *ort.Tensor
		var err error
		switch d := data.(type) {
		case []int64:
			x, err = ort.NewTensor(shape, d)
		case []float32:
			x, err = ort.NewTensor(shape, d)
		}
		if err != nil {
			return fmt.Errorf("input %s: %w", name, err)
		}
		in[name] = x
		return nil
	}
	for name, rows := range map[string][][]int64{"input_ids": ref.InputIDs, "attention_mask": ref.AttentionMask, "position_ids": ref.PositionIDs} {
		if err := add(name, []int64{B, T}, slices.Concat(rows...)); err != nil {
			return 0, err
		}
	}
	for i := range 2 {
		for _, kv := range []string{"key", "value"} {
			if err := add("past_key_values."+strconv.Itoa(i)+"."+kv, []int64{B, 2, 0, 16}, []float32{}); err != nil {
				return 0, err
			}
		}
	}
	out, err := s.Run(in)
	if err != nil {
		return 0, err
	}
	defer out.Destroy()
	logits, err := ort.Values[float32](out["logits"])
	if err != nil {
		return 0, err
	}
	const V = 1024
	if int64(len(logits)) != B*T*V {
		return 0, fmt.Errorf("logits: %d values, want %d", len(logits), B*T*V)
	}
	worst := 0.0
	for b := range B {
		for p := range T {
			if ref.AttentionMask[b][p] == 0 {
				continue
			}
			for v := range int64(V) {
				d := math.Abs(float64(logits[(b*T+p)*V+v]) - ref.Logits[b][p][v])
				if math.IsNaN(d) {
					return 0, fmt.Errorf("logit [%d,%d,%d] is NaN", b, p, v)
				}
				worst = math.Max(worst, d)
			}
		}
	}
	return worst, nil
}

// TestProfiledTinyQwen2CPU runs the CUDA check's code on the CPU build: the
// same reference comparison, and a profile that credits the CPU provider.
func TestProfiledTinyQwen2CPU(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "cpu")
	s, err := ort.NewSessionProfiledForTest(filepath.Join(tinyQwen2, "model.onnx"), ort.Options{IntraOpThreads: 1}, prefix)
	if err != nil {
		t.Fatal(err)
	}
	worst, err := tinyQwen2Logits(s)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if worst > 1e-4 {
		t.Errorf("logits differ from the reference by %g", worst)
	}
	files, _ := filepath.Glob(prefix + "*.json")
	if len(files) != 1 {
		t.Fatalf("profile files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	byEP, err := ort.ProfileProviders(b)
	if err != nil {
		t.Fatal(err)
	}
	if byEP["CPUExecutionProvider"] == 0 || len(byEP) != 1 {
		t.Errorf("kernels by provider %v, want only CPUExecutionProvider", byEP)
	}
}

// TestCUDAPluginStubs registers the real CUDA plugin on a machine without
// CUDA: it builds stand-in CUDA libraries (every function the plugin imports
// returns an error code) with the C compiler and runs the CUDA session check
// in a child that loads them. The plugin then registers, finds no GPU, and
// the selection through GetEpDevices must fail with ErrNoCUDA saying so. It
// needs the CUDA build (`make setup-cuda`) and gcc, and skips without them
// and on GPU machines.
func TestCUDAPluginStubs(t *testing.T) {
	lib := ort.CUDALibraryPath() // the library the cuda-library child loads
	plugin := filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")
	f, err := elf.Open(plugin)
	if err != nil {
		t.Skipf("needs the CUDA build of ONNX Runtime, which CI does not install (%v): run `make setup-cuda`", err)
	}
	syms, err := f.ImportedSymbols()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/nvidiactl"); err == nil || os.Getenv(requireCUDAEnv) == "1" {
		t.Skip("a GPU machine: the stand-in CUDA libraries would shadow the real ones (TestCUDATinyQwen2 checks this machine)")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc to build the stand-in CUDA libraries")
	}
	stubs := map[string][]string{"libcudart.so.13": nil, "libcublas.so.13": nil, "libcublasLt.so.13": nil, "libcurand.so.10": nil, "libcuda.so.1": nil}
	for _, s := range syms {
		if _, ok := stubs[s.Library]; ok {
			stubs[s.Library] = append(stubs[s.Library], s.Name)
		}
	}
	dir := t.TempDir()
	for name, fns := range stubs {
		var src strings.Builder
		for _, fn := range fns {
			if strings.HasSuffix(fn, "String") || strings.HasSuffix(fn, "Name") {
				fmt.Fprintf(&src, "const char *%s(void) { return \"stub\"; }\n", fn)
			} else {
				fmt.Fprintf(&src, "long %s(void) { return 100; }\n", fn) // cudaErrorNoDevice
			}
		}
		c, vs := filepath.Join(dir, name+".c"), filepath.Join(dir, name+".map")
		if err := errors.Join(os.WriteFile(c, []byte(src.String()), 0o644),
			os.WriteFile(vs, []byte(name+" { global: *; };\n"), 0o644)); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(cc, "-shared", "-fPIC", "-o", filepath.Join(dir, name), c,
			"-Wl,--version-script="+vs, "-Wl,-soname,"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("building stand-in %s: %v\n%s", name, err, out)
		}
	}
	out := runChild(t, "cuda-library", "LD_LIBRARY_PATH="+dir)
	if !strings.Contains(out, "no CUDA here") || !strings.Contains(out, "registered but cannot be selected") ||
		!strings.Contains(out, "CPUExecutionProvider:0 on cpu") {
		t.Fatalf("CUDA session with stand-in CUDA libraries: want ErrNoCUDA after registering the plugin, listing the devices; got\n%s", out)
	}
	t.Log(out)
}
