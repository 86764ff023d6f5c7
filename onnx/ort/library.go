// Package ort binds ONNX Runtime through github.com/yalue/onnxruntime_go:
// locating the shared library, one environment per process, sessions with
// execution providers, and tensor helpers.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Version is the ONNX Runtime release the project pins, CPU and CUDA alike.
const Version = "1.29.0"

// LibraryEnv names the environment variable that points at the ONNX Runtime
// shared library when no explicit path is given.
const LibraryEnv = "IGSEARCH_ORT_LIB"

// CacheEnv overrides the set-up cache directory (default: the user cache
// directory + "/igsearch", as scripts/setup.sh uses).
const CacheEnv = "IGSEARCH_CACHE"

// ErrNoLibrary reports that no ONNX Runtime shared library could be found.
var ErrNoLibrary = errors.New("ONNX Runtime library not found")

// CacheDir returns the directory where `make setup` keeps its downloads.
func CacheDir() string {
	if d := os.Getenv(CacheEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "igsearch")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "igsearch-cache")
	}
	return filepath.Join(home, ".cache", "igsearch")
}

// CPULibraryPath is where set-up installs the CPU build.
func CPULibraryPath() string {
	return filepath.Join(CacheDir(), "ort-"+Version, "cpu", "libonnxruntime.so.1")
}

// CUDALibraryPath is where `make setup-cuda` installs the CUDA build; its
// provider libraries sit beside it.
func CUDALibraryPath() string {
	return filepath.Join(CacheDir(), "ort-"+Version, "cuda", "libonnxruntime.so")
}

// FindLibrary resolves the ONNX Runtime shared library: the explicit path
// (the --ort-lib flag) if set, else $IGSEARCH_ORT_LIB, else the set-up cache
// (the CUDA build first when cuda is true). The error says how to fix it.
func FindLibrary(explicit string, cuda bool) (string, error) {
	check := func(path, from string) (string, error) {
		st, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("%w: %s (from %s): %v; run `make setup` or pass --ort-lib", ErrNoLibrary, path, from, err)
		}
		if st.IsDir() {
			return "", fmt.Errorf("%w: %s (from %s) is a directory, not the shared library", ErrNoLibrary, path, from)
		}
		return path, nil
	}
	if explicit != "" {
		return check(explicit, "--ort-lib")
	}
	if env := os.Getenv(LibraryEnv); env != "" {
		return check(env, "$"+LibraryEnv)
	}
	candidates := []string{CPULibraryPath()}
	if cuda {
		candidates = []string{CUDALibraryPath()}
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	hint := "run `make setup`"
	if cuda {
		hint = "run `make setup-cuda`"
	}
	return "", fmt.Errorf("%w: looked for --ort-lib, $%s and %s; %s, or point --ort-lib at libonnxruntime.so",
		ErrNoLibrary, LibraryEnv, candidates[0], hint)
}
