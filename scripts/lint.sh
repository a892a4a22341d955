#!/usr/bin/env bash
# Lint: ruff (rules and format) and the layering contracts (import-linter, pyproject's [tool.importlinter]).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
.venv/bin/python scripts/stage_package.py "$stage"
(cd "$stage" && PYTHONPATH="$stage" "$OLDPWD/.venv/bin/lint-imports" "$OLDPWD/pyproject.toml")
