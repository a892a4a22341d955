"""Code capture: local modules only, deterministic bytes, safe extraction."""

from __future__ import annotations

import importlib
import io
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from satchel.core.errors import CodeCaptureError, UnsafeArchive
from satchel.packager.code import capture, extract
from tests.functions import textutil


def test_captures_function_module_and_local_imports() -> None:
    package = capture(textutil.add.func)
    assert package.module == "tests.functions.textutil" and package.qualname == "add"
    assert "tests/functions/textutil.py" in package.files
    assert "tests/functions/helpers.py" in package.files  # imported locally
    assert "tests/__init__.py" in package.files and "tests/functions/__init__.py" in package.files
    names = zipfile.ZipFile(io.BytesIO(package.data)).namelist()
    assert sorted(names) == list(package.files)
    assert not any("site-packages" in n or n.startswith(("pytest", "satchel", "click")) for n in names)


def test_zip_is_deterministic(tmp_path: Path) -> None:
    first = capture(textutil.add.func).data
    second = capture(textutil.scale.func).data  # same module, same files
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _write_project(root: Path, body: str) -> None:
    (root / "proj").mkdir(parents=True)
    (root / "proj" / "__init__.py").write_text("")
    (root / "proj" / "util.py").write_text("def double(x):\n    return 2 * x\n")
    (root / "proj" / "main.py").write_text(textwrap.dedent(body))


def test_relative_imports_and_changes_change_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_project(tmp_path, "from .util import double\n\ndef f(x: int) -> int:\n    return double(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("proj.main")
    try:
        package = capture(mod.f)
        assert package.files == ("proj/__init__.py", "proj/main.py", "proj/util.py")
        (tmp_path / "proj" / "util.py").write_text("def double(x):\n    return x + x\n")
        assert capture(mod.f).data != package.data
    finally:
        for name in ("proj", "proj.main", "proj.util"):
            sys.modules.pop(name, None)


def test_nested_functions_are_refused() -> None:
    def inner(x: int) -> int:
        return x

    with pytest.raises(CodeCaptureError, match="module level"):
        capture(inner)


def _zip_with(name: str, *, symlink: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (0o120777 & 0xFFFF) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "x = 1\n")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "symlink", "message"),
    [
        ("../evil.py", False, "escapes"),
        ("a/../../evil.py", False, "escapes"),
        ("/abs/evil.py", False, "absolute"),
        ("link.py", True, "link"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path: Path, name: str, symlink: bool, message: str) -> None:
    archive = tmp_path / "code.zip"
    archive.write_bytes(_zip_with(name, symlink=symlink))
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match=message):
        extract(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "evil.py").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["code.zip"]


def test_extract_roundtrip(tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    archive.write_bytes(capture(textutil.add.func).data)
    dest = extract(archive, tmp_path / "code")
    assert (dest / "tests" / "functions" / "helpers.py").read_text().startswith('"""A local module')


SCRIPT = '''\
"""A training script."""
from __future__ import annotations
import json, sys
import pickle
import satchel
from dataclasses import dataclass

data = json.load(open(sys.argv[1]))
model = train(data)  # expensive
LIMIT = 10; print("trained")
LABELS = {}
LABELS["a"] = 1


@dataclass
class Point:
    x: float


class Model:
    def predict(self, p: Point) -> float:
        return p.x


def unrelated():
    return pickle.dumps(model)


@satchel.function
def predict(model, p: Point) -> int:
    return min(int(model.predict(p)), LIMIT) + LABELS["a"]


ref = predict.bind(model=model).export(name="predict")
if __name__ == "__main__":
    print(ref)
'''


def _kept(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_script_subset_keeps_what_the_function_needs() -> None:
    from satchel.packager.code import script_subset

    subset = script_subset(SCRIPT, "train.py", ["predict"])
    assert len(subset.splitlines()) == len(SCRIPT.splitlines())  # line numbers are kept
    assert _kept(subset) == [
        '"""A training script."""',
        "from __future__ import annotations",
        "import satchel",
        "from dataclasses import dataclass",
        "LIMIT = 10",
        "LABELS = {}",
        'LABELS["a"] = 1',
        "@dataclass",
        "class Point:",
        "    x: float",
        "@satchel.function",
        "def predict(model, p: Point) -> int:",
        '    return min(int(model.predict(p)), LIMIT) + LABELS["a"]',
    ]
    line = "def predict(model, p: Point) -> int:"
    assert SCRIPT.splitlines().index(line) == subset.splitlines().index(line)


def test_script_subset_adds_the_names_pickles_refer_to() -> None:
    from satchel.packager.code import script_subset

    subset = _kept(script_subset(SCRIPT, "train.py", ["predict", "Model"]))
    assert "class Model:" in subset and "    def predict(self, p: Point) -> float:" in subset
    assert not any(line.startswith(("model =", "data =", "def unrelated", "ref =")) for line in subset)


def test_script_capture_ships_the_subset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A function of a script run as __main__ travels with the script's subset, under the script's name."""
    script = tmp_path / "job.py"
    script.write_text("import os\nTIMES = 2\n\ndef f(x: int) -> int:\n    return x * TIMES\n\nos.exit(9)\n")
    namespace: dict = {"__name__": "__main__"}
    exec(compile(script.read_text().replace("os.exit(9)", ""), str(script), "exec"), namespace)
    fake_main = type(sys)("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    package = capture(namespace["f"])
    assert package.module == "job" and package.files == ("job.py",)
    shipped = zipfile.ZipFile(io.BytesIO(package.data)).read("job.py").decode()
    assert _kept(shipped) == ["TIMES = 2", "def f(x: int) -> int:", "    return x * TIMES"]


def test_a_function_under_the_main_guard_is_refused() -> None:
    from satchel.packager.code import script_subset

    source = 'import satchel\n\nif __name__ == "__main__":\n    def f(x: int) -> int:\n        return x\n'
    with pytest.raises(CodeCaptureError, match=r"train.py:3: 'f' is defined under `if __name__"):
        script_subset(source, "train.py", ["f"])
