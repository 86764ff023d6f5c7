#!/usr/bin/env bash
# Idempotent set-up of the ONNX Runtime 1.29.0 CUDA build (CUDA 13, cuDNN 9)
# from the npm registry, for machines with an NVIDIA GPU (`make setup-cuda`):
#   com.github.asus4.onnxruntime@0.4.9            Plugins/Linux/x64/libonnxruntime.so
#                                                 Plugins/Linux/x64/libonnxruntime_providers_shared.so
#   com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9  Plugins/Linux/x64/libonnxruntime_providers_cuda.so
# into $CACHE/ort-1.29.0/cuda/, where ort.CUDALibraryPath() looks (the
# provider libraries must sit beside libonnxruntime.so). The CUDA runtime,
# cuBLAS and cuDNN themselves come from the system (the NVIDIA driver and CUDA
# 13 toolkit or the nvidia-* pip wheels on LD_LIBRARY_PATH).
# A second run verifies the checksums and downloads nothing (~330 MB of
# tarballs the first time).
set -euo pipefail

ORT_VERSION=1.29.0
BASE_PKG=com.github.asus4.onnxruntime@0.4.9
GPU_PKG=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
SRC_DIR=package/Plugins/Linux/x64
# sha256 of each installed file, recorded from the first download.
declare -A SHA=(
	[libonnxruntime.so]=5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca
	[libonnxruntime_providers_shared.so]=086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d
	[libonnxruntime_providers_cuda.so]=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
)
BASE_FILES=(libonnxruntime.so libonnxruntime_providers_shared.so)
GPU_FILES=(libonnxruntime_providers_cuda.so)

cache="${IGSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/igsearch}"
dest="$cache/ort-$ORT_VERSION/cuda"

need() { command -v "$1" >/dev/null || { echo "setup-cuda: '$1' is required but not installed ($2)" >&2; exit 1; }; }

check_sha() {
	local file="$1" want="$2" got
	got="$(sha256sum "$file" | cut -d' ' -f1)"
	if [[ "$got" != "$want" ]]; then
		echo "setup-cuda: $file: sha256 $got, want $want" >&2
		return 1
	fi
}

installed() {
	local f
	for f in "${!SHA[@]}"; do
		[[ -f "$dest/$f" ]] && check_sha "$dest/$f" "${SHA[$f]}" 2>/dev/null || return 1
	done
}

if installed; then
	echo "setup-cuda: ONNX Runtime $ORT_VERSION (cuda) cached at $dest/libonnxruntime.so"
	exit 0
fi

need npm "install Node.js and npm"
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.setup-cuda.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# fetch PKG FILE...: npm pack PKG into $tmp, extract the named files, check them.
fetch() {
	local spec="$1"; shift
	echo "setup-cuda: fetching $spec from npm" >&2
	local tgz
	tgz="$(cd "$tmp" && npm pack --silent "$spec" 2>/dev/null | tail -n1)"
	[[ -n "$tgz" && -f "$tmp/$tgz" ]] || { echo "setup-cuda: npm pack $spec failed" >&2; exit 1; }
	local members=() f
	for f in "$@"; do members+=("$SRC_DIR/$f"); done
	tar --no-same-owner -xzf "$tmp/$tgz" -C "$tmp" "${members[@]}"
	rm -f "$tmp/$tgz"
	for f in "$@"; do check_sha "$tmp/$SRC_DIR/$f" "${SHA[$f]}"; done
}

fetch "$BASE_PKG" "${BASE_FILES[@]}"
fetch "$GPU_PKG" "${GPU_FILES[@]}"

mkdir -p "$dest"
for f in "${!SHA[@]}"; do
	chmod 0755 "$tmp/$SRC_DIR/$f"
	mv "$tmp/$SRC_DIR/$f" "$dest/$f.tmp"
	mv "$dest/$f.tmp" "$dest/$f"
done
echo "setup-cuda: ONNX Runtime $ORT_VERSION (cuda) installed at $dest/libonnxruntime.so"
echo "setup-cuda: run with --device cuda --ort-lib $dest/libonnxruntime.so (needs CUDA 13 and cuDNN 9 libraries on the loader path)"
