#!/usr/bin/env bash
# GPU check of `--device cuda[:N]`, for a machine with an NVIDIA GPU, its
# driver, and the CUDA 13 libraries (toolkit or nvidia-*-cu13 pip wheels):
#
#   bash scripts/cuda-check.sh            # device cuda (= cuda:0)
#   DEVICE=cuda:1 bash scripts/cuda-check.sh
#
# 1. `make setup-cuda`: the ONNX Runtime 1.29.0 CUDA build (plugin CUDA
#    provider) in the set-up cache.
# 2. go test (onnx/ort TestCUDATinyQwen2 and TestCUDALibrary) with
#    IGSEARCH_REQUIRE_CUDA=1: the tiny-qwen2 torch export on $DEVICE, logits
#    within 1e-4 of testdata/models/tiny-qwen2/reference.json (TF32 off), and
#    ONNX Runtime's profile must show kernels on CUDAExecutionProvider.
# 3. `igsearch logprobs` on the tiny-qwen2 checkpoint (graphs built by our
#    own builder) on cpu and on $DEVICE; the log-probs must agree within
#    $TOL (default 1e-2: this path runs with the provider's default TF32).
# Exits non-zero on any failure; prints the kernel counts and differences.
set -euo pipefail

cd "$(dirname "$0")/.."
DEVICE="${DEVICE:-cuda}"
TOL="${TOL:-1e-2}"
GO="${GO:-go}"
cache="${IGSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/igsearch}"
cpu_lib="$cache/ort-1.29.0/cpu/libonnxruntime.so.1"
cuda_lib="${IGSEARCH_ORT_CUDA_LIB:-$cache/ort-1.29.0/cuda/libonnxruntime.so}"

echo "cuda-check: 1/3 make setup-cuda" >&2
make setup-cuda

if command -v nvidia-smi >/dev/null; then
	nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv >&2 || true
else
	echo "cuda-check: warning: nvidia-smi not found; is the NVIDIA driver installed?" >&2
fi

# The CUDA plugin needs libcudart/libcublas/libcublasLt.so.13 and
# libcurand.so.10 (and cuDNN 9 for some ops) on the loader path. If ldconfig
# does not know them, look in the usual toolkit and pip-wheel places.
if ! ldconfig -p 2>/dev/null | grep -q 'libcublasLt\.so\.13'; then
	roots=(/usr/local/cuda /usr/local/cuda-13* /usr/lib/x86_64-linux-gnu)
	if command -v python3 >/dev/null; then
		while IFS= read -r d; do roots+=("$d/nvidia"); done < <(python3 -c 'import site; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)
	fi
	extra=""
	for r in "${roots[@]}"; do
		[[ -d "$r" ]] || continue
		while IFS= read -r lib; do
			d="$(dirname "$lib")"
			[[ ":$extra:" == *":$d:"* ]] || extra="$extra:$d"
		done < <(find "$r" -maxdepth 5 \( -name 'libcudart.so.13*' -o -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' -o -name 'libcurand.so.10*' -o -name 'libcudnn.so.9*' \) 2>/dev/null)
	done
	if [[ -n "$extra" ]]; then
		export LD_LIBRARY_PATH="${extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
		echo "cuda-check: LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
	else
		echo "cuda-check: warning: CUDA 13 libraries not found (install the CUDA 13 toolkit, or pip install the nvidia-*-cu13 wheels); the test will name what is missing" >&2
	fi
fi

echo "cuda-check: 2/3 tiny-qwen2 reference logits on $DEVICE (go test ./onnx/ort)" >&2
IGSEARCH_ORT_LIB="$cpu_lib" IGSEARCH_ORT_CUDA_LIB="$cuda_lib" \
	IGSEARCH_REQUIRE_CUDA=1 IGSEARCH_TEST_CUDA_DEVICE="$DEVICE" \
	"$GO" test -count=1 -v -run '^(TestCUDATinyQwen2|TestCUDALibrary|TestEPDevicesCPU|TestAppendEPDeviceCPU)$' ./onnx/ort/

echo "cuda-check: 3/3 igsearch logprobs, cpu vs $DEVICE" >&2
"$GO" build -o bin/igsearch ./tools/igsearch
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for d in cpu gpu; do
	mkdir -p "$tmp/$d"
	cp testdata/models/tiny-qwen2/config.json testdata/models/tiny-qwen2/model.safetensors "$tmp/$d/"
done
cat >"$tmp/in.jsonl" <<'EOF'
{"input_ids": [1, 17, 300, 999, 5, 42, 7, 512, 3, 88, 640, 2]}
{"input_ids": [9, 8, 7]}
{"input_ids": [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 11, 22, 33, 44, 55, 66, 77]}
EOF
IGSEARCH_ORT_LIB="$cpu_lib" bin/igsearch logprobs --model "$tmp/cpu" --in "$tmp/in.jsonl" --out "$tmp/cpu.jsonl" --device cpu
bin/igsearch logprobs --model "$tmp/gpu" --in "$tmp/in.jsonl" --out "$tmp/gpu.jsonl" --device "$DEVICE" --ort-lib "$cuda_lib"
mkdir -p "$tmp/cmp"
cat >"$tmp/cmp/main.go" <<'EOF'
// Compares two igsearch logprobs outputs row by row: max |a-b| <= tol.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
)

func rows(path string) [][]float64 {
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	var out [][]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var r struct{ Logprobs []float64 }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			panic(err)
		}
		out = append(out, r.Logprobs)
	}
	return out
}

func main() {
	a, b := rows(os.Args[1]), rows(os.Args[2])
	tol, _ := strconv.ParseFloat(os.Args[3], 64)
	if len(a) != len(b) || len(a) == 0 {
		fmt.Printf("row counts %d vs %d\n", len(a), len(b))
		os.Exit(1)
	}
	worst := 0.0
	for i := range a {
		if len(a[i]) != len(b[i]) {
			fmt.Printf("row %d: %d vs %d log-probs\n", i, len(a[i]), len(b[i]))
			os.Exit(1)
		}
		for j := range a[i] {
			d := math.Abs(a[i][j] - b[i][j])
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			worst = math.Max(worst, d)
		}
	}
	fmt.Printf("logprobs cpu vs cuda: max abs diff %.3g (tolerance %g)\n", worst, tol)
	if worst > tol {
		os.Exit(1)
	}
}
EOF
(cd "$tmp/cmp" && GO111MODULE=off "$GO" run main.go "$tmp/cpu.jsonl" "$tmp/gpu.jsonl" "$TOL")
echo "cuda-check: OK ($DEVICE)" >&2
