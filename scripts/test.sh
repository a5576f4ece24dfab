#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, rebuild the speech fixtures (hash-checked), lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The report's browser test needs a headless Chromium (Debian package); install it where we may. Outside CI the
# test skips, saying so, when there is none; in CI (.ci/run, LALM_BENCH_CI=1) a skip fails.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip"
fi
lalm-bench fixtures build
ruff check benchmark claims tests conftest.py
python -m pytest -q --durations=15 "$@"
