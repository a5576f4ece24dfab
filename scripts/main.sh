#!/usr/bin/env bash
# The main job on the embedded default: the offline real models on the shipped probe sets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
lalm-bench fixtures build
lalm-bench run "$@"
