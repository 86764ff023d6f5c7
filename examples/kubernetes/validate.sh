#!/bin/bash
# Validates the manifests with the Kubernetes OpenAPI schemas of the npm
# package kubernetes-models (ajv) and the shard conventions (validate.mjs).
# The packages go to a cache directory, never into the repository.
#
#   examples/kubernetes/validate.sh [FILE.yaml...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${IGSEARCH_CACHE:-$HOME/.cache/igsearch}/k8s-validate"
if [[ ! -d "$cache/node_modules/kubernetes-models" ]]; then
	mkdir -p "$cache"
	(cd "$cache" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent kubernetes-models@5.1.0 yaml@2.9.1)
fi
if [[ $# -eq 0 ]]; then set -- "$here"/*.yaml; fi
node "$here/validate.mjs" "$cache/node_modules" "$@"
