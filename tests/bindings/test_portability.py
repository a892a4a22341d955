"""The bindings and the floor under them run in workers on Python 3.9-3.13 with only fastavro installed:
check what we can here."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

BINDINGS = Path(__file__).resolve().parents[2] / "bindings"
CORE = Path(__file__).resolve().parents[2] / "core"
MODULES = [
    "_avro",
    "codec",
    "convert",
    "envelope",
    "fingerprint",
    "jsonform",
    "logical",
    "mismatch",
    "schema",
    "walker",
]
FLOOR = sorted(path.stem for path in CORE.glob("*.py"))
ALLOWED_THIRD_PARTY = {"fastavro"}


@pytest.mark.parametrize("name", MODULES)
def test_parses_as_python_39(name):
    source = (BINDINGS / f"{name}.py").read_text()
    ast.parse(source, feature_version=(3, 9))
    assert "from __future__ import annotations" in source


@pytest.mark.parametrize("name", FLOOR)
def test_the_floor_parses_as_python_39_and_imports_only_the_standard_library(name):
    source = (CORE / f"{name}.py").read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    assert name == "__init__" or "from __future__ import annotations" in source
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            ok = module.split(".")[0] in sys.stdlib_module_names or module.startswith("satchel.core")
            assert ok, f"core/{name}.py imports {module}"


@pytest.mark.parametrize("name", MODULES)
def test_imports_only_stdlib_fastavro_and_the_floor(name):
    tree = ast.parse((BINDINGS / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: satchel.bindings.*
                continue
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            ok = (
                top in sys.stdlib_module_names
                or top in ALLOWED_THIRD_PARTY
                or module.startswith("satchel.core")
            )
            assert ok, f"{name}.py imports {module}"


def test_no_match_statements_or_new_syntax():
    for name in MODULES:
        tree = ast.parse((BINDINGS / f"{name}.py").read_text())
        assert not any(type(node).__name__ == "Match" for node in ast.walk(tree)), name
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip":
                assert not any(k.arg == "strict" for k in node.keywords), name


SCRIPT = textwrap.dedent(
    """
    from __future__ import annotations

    import dataclasses, datetime, decimal, enum, sys
    from typing import Dict, List, Optional, Tuple

    from satchel.bindings import envelope as env
    from satchel.bindings.codec import Codec, RequestCodec
    from satchel.bindings.fingerprint import fingerprint64
    from satchel.bindings.jsonform import JsonForm
    from satchel.bindings.schema import request_schema, response_schema, signature_params

    class Color(enum.Enum):
        RED = 1

    @dataclasses.dataclass
    class Point:
        x: float
        tags: List[str]
        color: Color = Color.RED

    def f(n: int, pts: Dict[str, List[Point]], when: Optional[datetime.datetime] = None,
          d: decimal.Decimal = decimal.Decimal("1.10"), t: Tuple[int, str] = (1, "a")) -> List[Point]:
        ...

    params, ret = signature_params(f)
    request = RequestCodec(request_schema("f", params))
    response = Codec(response_schema("f", ret))
    args = {"n": 1, "pts": {"a": [Point(1.0, ["x"])]},
            "when": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}
    back = request.decode_call(request.encode_call(args))
    assert back == {**args, "d": decimal.Decimal("1.10"), "t": (1, "a")}, back
    assert response.decode(response.encode([Point(2.0, [])])) == [Point(2.0, [])]
    message = env.encode(env.Kind.RESULT, 3, b"xyz", fingerprint=response.fingerprint)
    decoded = env.decode(message)
    assert decoded.fingerprint == response.fingerprint and bytes(decoded.payload) == b"xyz"
    assert fingerprint64('"int"') == 0x7275D51A3F395C8F
    form = JsonForm(request.schema)
    assert form.json_to_value(form.value_to_json(args))["pts"] == args["pts"]
    heavy = [m for m in ("numpy", "pyarrow", "pandas") if m in sys.modules]
    assert not heavy, heavy
    print("ok", sys.version_info[:2])
    """
)
