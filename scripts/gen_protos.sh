#!/usr/bin/env bash
# Regenerate the Python stubs of bindings/proto/satchel/v1/functions.proto beside it (committed files).
#
# The generator is pinned: grpcio-tools 1.64 emits protobuf 5.26 gencode, which every protobuf runtime the
# `serve` extra allows (>=5.26, through 7.x) loads, and gRPC stubs needing grpcio>=1.64 (newer generators
# emit code that refuses older runtimes). tests/serving/test_grpc.py fails when the stubs are stale.
# GRPC_TOOLS_PYTHON=/path/to/python (with grpc_tools) overrides the pinned generator run through uv.
set -euo pipefail
cd "$(dirname "$0")/.."
GRPC_TOOLS_VERSION=1.64.3
OUT=bindings/proto

if [ -n "${GRPC_TOOLS_PYTHON:-}" ]; then
    protoc=("$GRPC_TOOLS_PYTHON" -m grpc_tools.protoc)
else
    protoc=(uv run --no-project --quiet --python 3.11 --with "grpcio-tools==$GRPC_TOOLS_VERSION" \
        python -m grpc_tools.protoc)
fi
"${protoc[@]}" -I bindings/proto --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
    satchel/v1/functions.proto

# The stubs import each other relatively (they live in satchel.bindings.proto.satchel.v1, not satchel.v1),
# and are left alone by ruff (generated code).
python3 - "$OUT/satchel/v1" <<'PY'
import pathlib
import sys

folder = pathlib.Path(sys.argv[1])
for name in ("functions_pb2.py", "functions_pb2.pyi", "functions_pb2_grpc.py"):
    path = folder / name
    text = path.read_text()
    text = text.replace("from satchel.v1 import functions_pb2 as", "from . import functions_pb2 as")
    if not text.startswith("# ruff: noqa"):
        text = "# ruff: noqa\n# fmt: off\n" + text
    path.write_text(text)
PY
echo "regenerated $OUT/satchel/v1/functions_pb2{.py,.pyi,_grpc.py}"
