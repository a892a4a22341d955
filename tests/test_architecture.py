"""The shape the layers keep (import-linter checks the rest in scripts/lint.sh): settings read in one place
and documented, and no layer standing on the public face."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from satchel.core.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "bindings", "packager", "runtime", "flows", "serving"]


def _modules() -> list[Path]:
    return [path for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py"))]


def test_the_configuration_table_lists_every_setting() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `(SATCHEL_[A-Z_]+)` \|", text, flags=re.M))
    assert documented == set(SETTINGS)
    for setting in SETTINGS.values():
        row = f"| `{setting.name}` | {setting.kind} | {setting.default} | {setting.help} |"
        assert row in text, f"docs/configuration.md: the row of {setting.name} differs from core/settings.py"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_satchel_variables_are_read_by_the_settings_module_only(path: Path) -> None:
    if path == ROOT / "core" / "settings.py":
        return
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SETTINGS:
            parent_reads = re.search(rf"(environ|getenv)[^\n]*{node.value}", path.read_text())
            assert not parent_reads, f"{path.relative_to(ROOT)} reads {node.value}: use satchel.core.settings"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_layer_imports_the_public_face(path: Path) -> None:
    """`import satchel` or `from satchel import <name>` runs the face; layers import their modules."""
    subpackages = {"core", *LAYERS}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            assert all(alias.name != "satchel" for alias in node.names), f"{path}: line {node.lineno}"
        elif isinstance(node, ast.ImportFrom) and node.module == "satchel" and not node.level:
            names = {alias.name for alias in node.names}
            assert names <= subpackages, (
                f"{path}: line {node.lineno} imports {names - subpackages} from the face"
            )


def test_the_errors_keep_their_public_module() -> None:
    import satchel.core.errors as floor
    import satchel.core.errors as public

    names = [n for n, v in vars(floor).items() if isinstance(v, type) and issubclass(v, Exception)]
    assert "RemoteError" in names and "MissingExtra" in names
    assert all(getattr(public, n) is getattr(floor, n) for n in names)
