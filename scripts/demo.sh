#!/usr/bin/env bash
# make demo: the main job on the embedded default (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/igsearch demo --out out/demo "$@"
