#!/usr/bin/env bash
# Create .venv with Satchel (editable) and everything the tests, demo and benchmarks need.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip uv
.venv/bin/python -m uv pip install --quiet --python .venv/bin/python -e '.[dev]'
echo "ready: .venv ($(.venv/bin/python --version))" >&2
