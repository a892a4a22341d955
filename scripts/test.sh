#!/usr/bin/env bash
# Set up, then run the whole test suite in parallel (extra arguments go to pytest and select what runs).
# Without arguments it runs in two passes: everything but Ray's tests (-n SATCHEL_TEST_WORKERS, default 4),
# then the tests that start a local Ray cluster, two at a time, so Ray's node and Serve start on a machine
# the rest of the suite is not keeping busy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -n "${SATCHEL_TEST_WORKERS:-4}" "$@"
fi
.venv/bin/python -m pytest -n "${SATCHEL_TEST_WORKERS:-4}" -m "not ray"
exec .venv/bin/python -m pytest -n 2 -m ray
