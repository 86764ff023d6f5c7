package ort

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// env is the process-wide ONNX Runtime environment. ONNX Runtime allows one
// per process and loads one shared library, so this is inherent global state,
// guarded by mu.
var env struct {
	mu  sync.Mutex
	lib string // the library the environment was created from; "" if none
}

// ErrNoCUDA reports that the loaded ONNX Runtime library cannot append the
// CUDA execution provider (a CPU-only build, or missing provider libraries).
var ErrNoCUDA = errors.New("ONNX Runtime library has no usable CUDA execution provider")

// Init loads the ONNX Runtime shared library at libPath and creates the
// process-wide environment. It is idempotent and safe for concurrent use:
// calling it again with the same library does nothing, and calling it with a
// different one is an error, since a process can hold only one. A missing or
// unloadable library yields an error (wrapping ErrNoLibrary when the file is
// missing) that names the path and says to run `make setup`.
func Init(libPath string) error {
	if libPath == "" {
		return fmt.Errorf("%w: empty library path; run `make setup` or pass --ort-lib", ErrNoLibrary)
	}
	st, err := os.Stat(libPath)
	if err != nil {
		return fmt.Errorf("%w: %s: %v; run `make setup` or pass --ort-lib", ErrNoLibrary, libPath, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%w: %s is a directory, not the shared library; run `make setup` or pass --ort-lib", ErrNoLibrary, libPath)
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.lib != "" {
		if env.lib == libPath {
			return nil
		}
		return fmt.Errorf("ort: environment already initialised from %s, cannot switch to %s in the same process", env.lib, libPath)
	}
	ortgo.SetSharedLibraryPath(libPath)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return fmt.Errorf("ort: loading ONNX Runtime from %s: %w (is it ONNX Runtime %s for this platform? run `make setup` or pass --ort-lib)", libPath, err, Version)
	}
	env.lib = libPath
	return nil
}

// InitDefault resolves the library with FindLibrary (explicit is the
// --ort-lib flag, may be empty; the CUDA build is preferred when dev is a
// CUDA device) and calls Init. It returns the library path in use.
func InitDefault(explicit string, dev Device) (string, error) {
	env.mu.Lock()
	lib := env.lib
	env.mu.Unlock()
	if lib != "" && explicit == "" {
		return lib, nil
	}
	path, err := FindLibrary(explicit, dev.CUDA)
	if err != nil {
		return "", err
	}
	if err := Init(path); err != nil {
		return "", err
	}
	return path, nil
}

// Library returns the path of the loaded ONNX Runtime library, or "" before
// Init.
func Library() string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.lib
}

func ready() error {
	if Library() == "" {
		return fmt.Errorf("ort: environment not initialised; call ort.Init or ort.InitDefault first")
	}
	return nil
}

// Device selects where a session runs: the CPU, or CUDA device ID.
type Device struct {
	CUDA bool
	ID   int
}

// CPU is the default device.
var CPU = Device{}

// ParseDevice parses a --device flag: "cpu", "cuda" (device 0) or "cuda:N".
func ParseDevice(s string) (Device, error) {
	switch t := strings.ToLower(strings.TrimSpace(s)); {
	case t == "" || t == "cpu":
		return CPU, nil
	case t == "cuda" || t == "gpu":
		return Device{CUDA: true}, nil
	case strings.HasPrefix(t, "cuda:"):
		n, err := strconv.Atoi(t[len("cuda:"):])
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N with N ≥ 0", s)
		}
		return Device{CUDA: true, ID: n}, nil
	}
	return Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N", s)
}

// String formats d as ParseDevice accepts it.
func (d Device) String() string {
	if d.CUDA {
		return fmt.Sprintf("cuda:%d", d.ID)
	}
	return "cpu"
}
