#!/usr/bin/env bash
# Set up, then train a model, export it bound into `predict`, and call it from a venv without scikit-learn.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/iris/demo.py "$@"
