# igsearch: `make demo` runs the embedded default, `make test` the test suite.
# Both run set-up first; set-up is cached, so a second run downloads nothing.

GO      ?= go
BIN     := bin/igsearch
CACHE   := $(or $(IGSEARCH_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/igsearch)
ORT_LIB := $(CACHE)/ort-1.29.0/cpu/libonnxruntime.so.1
QWEN_TOKENIZER := $(CACHE)/tokenizers/qwen2.5/tokenizer.json
# The test packages read these; the binary finds the same files on its own.
export IGSEARCH_ORT_LIB ?= $(ORT_LIB)
export IGSEARCH_QWEN_TOKENIZER ?= $(QWEN_TOKENIZER)

.PHONY: all setup setup-cuda build test demo bench bench-demo lint fuzz clean

all: build

setup:
	$(GO) mod download
	bash scripts/setup.sh

setup-cuda: setup
	bash scripts/setup-cuda.sh

build: setup
	$(GO) build -o $(BIN) ./tools/igsearch

test: setup
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...

demo: build
	bash scripts/demo.sh

bench: build
	bash scripts/bench.sh

bench-demo: build
	bash scripts/bench-demo.sh

lint:
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin out
