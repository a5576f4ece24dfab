#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, rebuild the speech fixtures (hash-checked), lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
lalm-bench fixtures build
ruff check benchmark claims tests conftest.py
python -m pytest -q --durations=15 "$@"
