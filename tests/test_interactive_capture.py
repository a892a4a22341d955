"""Functions defined in an interactive session (notebook cells on a real kernel, `python -c`, stdin,
exec of compiled source) travel as a generated module, run in a real worker, and give the same bytes
from the same cells; what cannot travel is one error naming it."""

from __future__ import annotations

import importlib
import io
import json
import linecache
import os
import pty
import subprocess
import sys
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import satchel
from satchel.core.errors import CodeCaptureError
from satchel.packager.bundle import read_bundle
from satchel.packager.code import capture
from tests.kernels import run_cells
from tests.test_cli import satchel_cli

REPO = Path(__file__).resolve().parent.parent

# -- a notebook on a real kernel ------------------------------------------------------------------------

#: A local module next to the notebook: it travels with the function, as any local import does.
LOCAL_MODULE = "def bonus(v):\n    return v / 100\n"

CELLS = [
    # cell 1: imports and constants of literal types
    "import math\nimport json as js\nfrom statistics import mean\nfrom dataclasses import dataclass\n"
    "import satchel\nimport shapes_bonus\n"
    'SCALE = 2.0\nWEIGHTS = {"a": 1.5, "b": 0.5}\nTAGS = {"red", "green", "blue", "cyan"}\n',
    # cell 2: a dataclass in the signature, with no method of its own
    "@dataclass\nclass Point:\n    x: float\n    y: float\n",
    # cell 3: helpers, one using another
    "def norm(p):\n    return math.hypot(p.x, p.y) * 100\n\n"
    "def weighted(v):\n    return v * WEIGHTS['a'] + inner(v)\n\n"
    "def inner(v):\n    return mean([v, SCALE])\n",
    # cell 4: a helper redefined: the live definition travels
    "def norm(p):\n    return math.hypot(p.x, p.y)\n",
    # cell 5: a closure over a constant, a class with methods, a model object bound as an artifact
    "def make_offset(k):\n    def offset(v):\n        return v + k\n    return offset\n\nshift = make_offset(10)\n\n"
    "class Model:\n    def __init__(self, w):\n        self.w = w\n"
    "    def predict(self, v):\n        return v * self.w\n\nmodel = Model(3.0)\n",
    # cell 6: the function
    "@satchel.function\n"
    "def score(model, p: Point) -> float:\n"
    '    """Scores a point."""\n'
    "    v = shift(weighted(norm(p))) + len(TAGS) + len(js.dumps(sorted(TAGS)))\n"
    "    return model.predict(v) + shapes_bonus.bonus(v)\n",
    # cell 7: export, and the same call here
    "ref = score.bind(model=model).export(name='score', progress=False)\n"
    "print(js.dumps([str(ref), score(model, Point(3.0, 4.0))]))\n",
    # cell 8: a lambda over a live connection cannot travel
    "import sqlite3\nconn = sqlite3.connect(':memory:')\nfetch = lambda: conn.execute('select 1').fetchone()[0]\n"
    "@satchel.function\ndef query() -> int:\n    return fetch()\n\nquery.export(name='query', progress=False)\n",
]


class Run(NamedTuple):
    ref: str
    here: float  # the function called in the kernel
    outputs: list[list[dict]]


def _run_notebook(tmp: Path, store: str) -> Run:
    (tmp / "shapes_bonus.py").write_text(LOCAL_MODULE)
    # the notebook's directory is on its path, as Jupyter's working directory is
    cells = [f"import sys\nsys.path.insert(0, {str(tmp)!r})", *CELLS]
    outputs = run_cells(cells, tmp / "jupyter", env={"SATCHEL_STORE": store, "PYTHONPATH": str(REPO)})
    errors = [out for cell in outputs[:-1] for out in cell if "ename" in out]
    assert not errors, errors
    printed = [out["text"] for out in outputs[-2] if out.get("name") == "stdout"]
    ref, here = json.loads(printed[-1])
    return Run(ref, here, outputs)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """The notebook run twice, on two fresh kernels (each with its own string hashing), into one store."""
    store = (tmp_path_factory.mktemp("nb-store") / "store").as_uri()
    return (
        _run_notebook(tmp_path_factory.mktemp("nb1"), store),
        _run_notebook(tmp_path_factory.mktemp("nb2"), store),
    )


def _code_files(ref: str) -> dict[str, str]:
    bundle, store = read_bundle(ref)
    data = store.open_blob(bundle.doc["code"]["blob"]).read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name).decode() for name in zf.namelist()}


@pytest.mark.slow
def test_a_function_exported_from_a_cell_runs_in_a_worker(notebook: tuple[Run, Run]) -> None:
    first, _ = notebook
    with satchel.load(first.ref) as fn:
        assert fn(p={"x": 3.0, "y": 4.0}) == pytest.approx(first.here)
    bundle, _ = read_bundle(first.ref)
    module = bundle.doc["function"]["module"]
    assert module.startswith("satchel_session_") and bundle.doc["function"]["qualname"] == "score"
    assert bundle.doc["function"]["doc"] == "Scores a point."
    files = _code_files(first.ref)
    assert sorted(files) == sorted([f"{module}.py", "shapes_bonus.py"])  # the local module travels too
    text = files[f"{module}.py"]
    assert "return math.hypot(p.x, p.y)\n" in text and "* 100" not in text  # the live `norm` only
    assert "TAGS = {'blue', 'cyan', 'green', 'red'}" in text
    assert "import json as js" in text and "from statistics import mean" in text
    assert "class Model:" in text and "class Point:" in text  # the pickled model's class, the signature's
    assert "ipykernel" not in text and "sqlite3" not in text and "sys.path" not in text
    record = bundle.doc["interface"]["request"]["fields"][0]["type"]
    assert record["python"] == f"{module}:Point"


@pytest.mark.slow
def test_the_same_cells_give_the_same_code_package(notebook: tuple[Run, Run]) -> None:
    first, second = notebook
    assert first.ref != second.ref  # two versions of the bundle...
    blobs = [read_bundle(run.ref)[0].doc["code"]["blob"] for run in notebook]
    assert blobs[0] == blobs[1]  # ...with one code package


@pytest.mark.slow
def test_what_cannot_travel_from_a_notebook_is_one_error_naming_it(notebook: tuple[Run, Run]) -> None:
    errors = [out for out in notebook[0].outputs[-1] if "ename" in out]
    assert [e["ename"] for e in errors] == ["CodeCaptureError"]
    message = errors[0]["evalue"]
    assert "conn (sqlite3.Connection, read by 'fetch')" in message and "cannot be pickled" in message


@pytest.mark.slow
def test_inspect_code_shows_the_captured_source(notebook: tuple[Run, Run]) -> None:
    ref = notebook[0].ref
    out = satchel_cli("inspect", "--code", ref).stdout
    module = read_bundle(ref)[0].doc["function"]["module"]
    files = _code_files(ref)
    assert out.startswith(f"# {module}.py\n")  # the function's module first
    assert out == f"# {module}.py\n{files[module + '.py'].rstrip()}\n\n# shapes_bonus.py\n{LOCAL_MODULE}"


# -- exec of compiled source, in this process --------------------------------------------------------------

SESSION = """
import math
import json as js
from fractions import Fraction
from collections import OrderedDict as OD
from dataclasses import dataclass
import satchel
LIMIT = 10
NAN = float("nan")
SIZES = (1, 2.5, None, b"x", [True, {"k": frozenset({3, 1})}])

def compute_size():
    return len(SIZES)

class Config:
    size = compute_size()  # runs as the module is imported: compute_size must come first

    def limit(self):
        return LIMIT * self.size

@dataclass
class Point:
    x: float
    y: float

def norm(p: Point) -> float:
    return math.hypot(p.x, p.y) + helper(1)

def helper(v):
    return v * Config().limit()

def make(k):
    def scale(x):
        return x * k
    return scale

triple = make(3)
square = lambda x: x * x  # a lambda bound at the top level
also_norm = unit_norm = norm

class Units:
    measure = staticmethod(unit_norm)  # read as the module is imported: norm and its name come first

ENV = satchel.Environment()

@satchel.function(environment=ENV)
def predict(p: Point) -> float:
    return triple(also_norm(p)) + Units.measure(p) + square(2) + (0 if NAN == NAN else 1) + len(js.dumps(OD()))
"""


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch):
    """Runs source as a session does: compiled under a name whose text linecache holds."""

    def run(source: str, filename: str = "<cell-1>", name: str = "__main__") -> dict[str, Any]:
        source = textwrap.dedent(source)
        monkeypatch.setitem(linecache.cache, filename, (len(source), None, source.splitlines(True), filename))
        namespace: dict[str, Any] = {"__name__": name}
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        return namespace

    return run


def _generated(package) -> str:
    return zipfile.ZipFile(io.BytesIO(package.data)).read(f"{package.module}.py").decode()


def test_exec_of_compiled_source_exports_and_runs(session, store_url: str) -> None:
    ns = session(SESSION)
    ref = ns["predict"].export(name="predict", progress=False)
    with satchel.load(ref) as fn:
        assert fn(p={"x": 3.0, "y": 4.0}) == ns["predict"](ns["Point"](3.0, 4.0))


def test_a_name_is_imported_from_the_shortest_package_that_has_it(session) -> None:
    ns = session(
        """
        from concurrent.futures import ThreadPoolExecutor
        from email.mime.text import MIMEText
        def f() -> str:
            return ThreadPoolExecutor.__name__ + MIMEText.__name__
        """
    )
    assert ThreadPoolExecutor.__module__ == "concurrent.futures.thread"  # where it is defined...
    text = _generated(capture(ns["f"]))
    assert "from concurrent.futures import ThreadPoolExecutor\n" in text  # ...but the package that exports it
    assert "from email.mime.text import MIMEText\n" in text  # no shorter package has it


def test_the_generated_module_holds_what_the_function_uses(
    session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = session(SESSION, name="my_session")  # a namespace of its own name: no module of that name
    package = capture(ns["predict"].func)
    text = _generated(package)
    assert package.files == (f"{package.module}.py",)
    assert package.module == "satchel_session_" + __import__("hashlib").sha256(text.encode()).hexdigest()[:16]
    assert "from collections import OrderedDict as OD\n" in text and "import json as js\n" in text
    assert 'NAN = float("nan")\n' in text and "LIMIT = 10\n" in text and "ENV = satchel.Environment()" in text
    assert "SIZES = (1, 2.5, None, b'x', [True, {'k': frozenset({1, 3})}])\n" in text
    assert "square = lambda x: x * x  # a lambda bound at the top level\n" in text
    assert "also_norm = norm\nunit_norm = norm\n" in text and text.count("def norm(") == 1
    assert text.index("unit_norm = norm") < text.index("class Units")
    assert "Fraction" not in text and "<cell-1>" not in text
    assert text.index("def compute_size") < text.index("class Config")
    (tmp_path / f"{package.module}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module(package.module)
        assert module.predict(module.Point(3.0, 4.0)) == ns["predict"](ns["Point"](3.0, 4.0))
        assert module.triple.__closure__[0].cell_contents == 3
    finally:
        sys.modules.pop(package.module, None)
    assert capture(session(SESSION, name="my_session")["predict"].func).data == package.data


def test_a_session_under_future_annotations_keeps_them(session) -> None:
    ns = session(
        """
        from __future__ import annotations
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: float

        def f(p: Point) -> float:
            return p.x
        """
    )
    text = _generated(capture(ns["f"]))
    assert text.splitlines()[1:3] == ["from __future__ import annotations", ""]
    assert "from dataclasses import dataclass\n" in text


def test_a_dataclass_of_the_session_is_named_in_the_shipped_module(session, store_url: str) -> None:
    ns = session(SESSION)
    ref = ns["predict"].export(name="predict", progress=False)
    doc = read_bundle(ref)[0].doc
    assert doc["interface"]["request"]["fields"][0]["type"]["python"] == f"{doc['function']['module']}:Point"
    assert doc["function"]["source_module"] == "__main__"


# -- what cannot travel ---------------------------------------------------------------------------------


def test_globals_that_cannot_travel_are_one_error_naming_each(session, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    ns = session(
        f"""
        import socket
        from fractions import Fraction
        import satchel
        fh = open({str(tmp_path / "notes.txt")!r})
        sock = socket.socket()
        RATE = Fraction(1, 3)

        def helper():
            return sock.fileno()

        @satchel.function
        def f() -> int:
            return len(fh.name) + helper() + int(RATE)
        """
    )
    try:
        with pytest.raises(CodeCaptureError) as info:
            capture(ns["f"].func)
    finally:
        ns["fh"].close()
        ns["sock"].close()
    lines = str(info.value).splitlines()
    assert lines[0] == "cannot package 'f': it uses globals of the session that cannot travel with it:"
    assert lines[1].startswith("  RATE (fractions.Fraction, read by 'f'): not a constant of a literal type")
    assert "bind it (f.bind(RATE=RATE))" in lines[1]
    assert lines[2].startswith("  fh (_io.TextIOWrapper, read by 'f'): it cannot be pickled")
    assert lines[3].startswith("  sock (socket.socket, read by 'helper'): it cannot be pickled")
    assert len(lines) == 4


def test_a_closure_over_a_live_object_names_the_variable(session) -> None:
    ns = session(
        """
        import threading

        def make(lock):
            def guarded(x):
                with lock:
                    return x
            return guarded

        g = make(threading.Lock())

        def f(x: int) -> int:
            return g(x)
        """
    )
    with pytest.raises(
        CodeCaptureError, match=r"'g' \(read by 'f'\): it closes over 'lock' \(_thread.lock\)"
    ):
        capture(ns["f"])


def test_exec_of_a_plain_string_says_how_to_make_it_capturable() -> None:
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec("def f(x: int) -> int:\n    return x\n", ns)
    with pytest.raises(CodeCaptureError, match=r"exec\(\) of a string.*linecache"):
        capture(ns["f"])


def test_a_source_changed_since_is_not_shipped(session) -> None:
    ns = session("def f(x: int) -> int:\n    return x\n", filename="<cell-9>")
    text = "def f(x: int) -> int:\n    return x + 1\n"
    linecache.cache["<cell-9>"] = (len(text), None, text.splitlines(True), "<cell-9>")
    with pytest.raises(CodeCaptureError, match="is not the code that defined it"):
        capture(ns["f"])


def test_a_class_defined_differently_in_two_places_is_refused(session) -> None:
    ns = session("class P:\n    x: int\n", filename="<cell-a>")
    ns2 = session("class P:\n    y: int\n\ndef f(p: P) -> int:\n    return 1\n", filename="<cell-b>")
    ns2["P"] = ns["P"]
    with pytest.raises(CodeCaptureError, match="'P'.*defined differently in several places"):
        capture(ns2["f"])


# -- python -c and stdin --------------------------------------------------------------------------------

PROGRAM = """
import satchel
from dataclasses import dataclass
FACTOR = 2.5

@dataclass
class Point:
    x: float
    y: float

def helper(p):
    return (p.x + p.y) * FACTOR

@satchel.function
def score(p: Point) -> float:
    return helper(p)

print(score.export(name="score", progress=False))
"""


def _child(args: list[str], store_url: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "SATCHEL_STORE": store_url, "PYTHONPATH": str(REPO)},
        **kwargs,
    )


def _check_exported(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr
    with satchel.load(proc.stdout.strip().splitlines()[-1]) as fn:
        assert fn(p={"x": 1.0, "y": 2.0}) == 7.5


def test_python_c_exports(store_url: str) -> None:
    _check_exported(_child(["-X", "utf8", "-c", PROGRAM], store_url))


def test_ipython_in_a_terminal_exports(store_url: str) -> None:
    _check_exported(_child(["-m", "IPython", "--quick", "--no-banner", "-c", PROGRAM], store_url))


def test_a_program_on_stdin_from_a_file_exports(store_url: str, tmp_path: Path) -> None:
    program = tmp_path / "job.py"
    program.write_text(PROGRAM)
    with open(program) as stdin:
        _check_exported(_child(["-"], store_url, stdin=stdin))


def test_a_program_piped_on_stdin_is_one_clear_error(store_url: str) -> None:
    proc = _child([], store_url, input=PROGRAM)
    assert proc.returncode != 0
    assert "cannot capture function 'score': it was read from a pipe on stdin" in proc.stderr
    assert "save the code to a .py file" in proc.stderr


def test_a_function_typed_into_the_repl_is_one_clear_error(store_url: str) -> None:
    """The plain REPL keeps no source: the error says where to define the function instead."""
    controller, terminal = pty.openpty()
    lines = [
        "import satchel",
        "@satchel.function",
        "def f(x: int) -> int:",
        "    return x",
        "",
        "f.export(name='f')",
    ]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-q"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "SATCHEL_STORE": store_url, "PYTHONPATH": str(REPO), "PYTHON_BASIC_REPL": "1"},
        )
        os.write(controller, ("\n".join(lines) + "\nexit()\n").encode())
        _, err = proc.communicate(timeout=600)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err
    assert "CodeCaptureError: cannot capture function 'f': it was typed into the Python REPL" in err, err
    assert "save the code to a .py file" in err
