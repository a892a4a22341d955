"""The notebook face: bundles imported by name (`satchel.bundles`), the HTML summaries Jupyter shows
(parsed here with html.parser), and the example call given at export (checked, stored, served in OpenAPI)."""

from __future__ import annotations

import gc
import inspect
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

import satchel
from satchel.core.errors import ArgumentError, BundleFormatError, BundleNotFound
from satchel.packager.bundle import read_bundle
from satchel.packager.refs import BundleRef
from tests.conftest import REPO
from tests.functions import notebook_face as nf
from tests.waiting import wait_gone

# -- what the summaries say --------------------------------------------------------------------------

_VOID = {"br", "hr", "img", "meta", "input"}


class Summary(HTMLParser):
    """A summary's parts: its kind and title, docstring, rows (label -> cell text), the list items and
    <details> summary of each row; and a check that every tag is closed where it was opened."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.kind = self.title = self.doc = ""
        self.rows: dict[str, str] = {}
        self.items: dict[str, list[str]] = {}
        self.details: dict[str, str] = {}
        self.tags: list[str] = []
        self._open: list[str] = []
        self._label: str | None = None
        self._buffers: dict[str, str] = {}
        self.feed(markup)
        self.close()
        assert not self._open, f"tags left open: {self._open}"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag not in _VOID:
            self._open.append(tag)
        if tag in ("th", "td", "li", "summary", "pre", "strong", "span"):
            self._buffers[tag] = ""
        if tag == "td":
            self.items[self._label] = []

    def handle_endtag(self, tag: str) -> None:
        assert self._open and self._open[-1] == tag, f"</{tag}> closes {self._open[-1:]}"
        self._open.pop()
        text = self._buffers.pop(tag, "")
        if tag == "th":
            self._label = text.strip()
        elif tag == "td":
            self.rows[self._label] = " ".join(text.split())
        elif tag == "li":
            self.items[self._label].append(text.strip())
        elif tag == "summary":
            self.details[self._label] = text.strip()
        elif tag == "pre":
            self.doc = text
        elif tag == "strong":
            self.title = text
        elif tag == "span" and not self.kind:
            self.kind = text

    def handle_data(self, data: str) -> None:
        for tag in self._buffers:
            self._buffers[tag] += data


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def close_imported():
    """The proxies `satchel.bundles` handed out in a test stop with it."""
    yield
    bundles = sys.modules.get("satchel.bundles")
    for fn in getattr(bundles, "_loaded", {}).values():
        fn.close()
    if bundles is not None:
        bundles._loaded.clear()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One store for the tests that only read: shout (with its example) under three names, stamp."""
    url = (tmp_path_factory.mktemp("nb") / "store").as_uri()
    return {
        "url": url,
        "shout": nf.shout.export(name="shout", store=url),
        "my-model": nf.shout.export(name="my-model", store=url),
        "2024-model": nf.shout.export(name="2024-model", store=url),
        "stamp": nf.stamp.export(name="stamp", store=url),
        "die": nf.die.export(name="die", store=url),
    }


@pytest.fixture
def default_store(shared_store: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("SATCHEL_STORE", shared_store["url"])
    return shared_store


# -- importing by name ------------------------------------------------------------------------------


def test_import_by_name_starts_its_worker_on_the_first_call(default_store: dict) -> None:
    from satchel.bundles import shout

    assert shout.workers == 0 and shout.live_workers == 0  # ready, but no worker until called
    assert str(inspect.signature(shout)) == "(n: int, label: str = 'hey') -> str"
    assert shout.__doc__.startswith("Repeat a label")
    assert shout(2) == "HEY HEY"
    assert shout.live_workers == 1
    pid = shout.worker_pid
    assert shout(1, label="x") == "X" and shout.worker_pid == pid  # the worker stays up
    import satchel.bundles as b

    assert b.shout is shout and b.get("shout:1") is shout and b["shout"] is shout
    assert shout.ref == default_store["shout"]


def test_dir_lists_the_names_and_how_others_are_reached(default_store: dict) -> None:
    import satchel.bundles

    names = dir(satchel.bundles)
    assert {"shout", "my_model", "stamp", "get"} <= set(names)
    assert "2024-model" not in names and "2024_model" not in names
    from satchel.bundles import my_model

    assert my_model.ref.name == "my-model" and my_model(1) == "HEY"
    assert satchel.bundles["2024-model"].ref.name == "2024-model"
    assert satchel.bundles.get("2024-model:1") is satchel.bundles["2024-model"]


def test_unknown_names_name_the_store_and_close_names(default_store: dict) -> None:
    import satchel.bundles
    from satchel.core.errors import UnknownBundle

    with pytest.raises(ImportError) as caught:
        from satchel.bundles import shuot  # noqa: F401
    message = str(caught.value)
    assert "'shuot'" in message and default_store["url"] in message and "shout" in message
    assert isinstance(caught.value, UnknownBundle) and isinstance(caught.value, BundleNotFound)
    assert caught.value.name == "shuot"
    with pytest.raises(
        ImportError,
        match=r"no bundle named 'zzz' in .*Bundles there: 2024-model, die, my-model, shout, stamp\.",
    ):
        satchel.bundles.zzz  # noqa: B018
    assert not hasattr(satchel.bundles, "_repr_html_")  # what tools probe modules for never reads the store
    with pytest.raises(BundleNotFound, match="no bundle named 'nope'"):
        satchel.bundles["nope"]


def test_two_names_of_one_attribute_are_an_error_naming_both(store_url: str) -> None:
    import satchel.bundles

    nf.stamp.export(name="a-b", store=store_url)
    nf.stamp.export(name="a.b", store=store_url)
    assert "a_b" in dir(satchel.bundles)
    with pytest.raises(
        ImportError, match=r"'a_b' names several bundles .*a-b, a\.b.*satchel.bundles\['a-b'\]"
    ):
        satchel.bundles.a_b  # noqa: B018
    nf.stamp.export(name="a_b", store=store_url)
    assert satchel.bundles.a_b.ref.name == "a_b"  # the exact name wins


def test_a_newer_version_gives_a_new_proxy(store_url: str) -> None:
    import satchel.bundles

    nf.shout.export(name="shout", store=store_url)
    first = satchel.bundles.shout
    assert satchel.bundles.shout is first
    assert first(1) == "HEY"
    pid = first.worker_pid
    nf.stamp.export(name="shout", store=store_url)
    second = satchel.bundles.shout
    assert second is not first and second.ref.version == 2
    del first  # the module keeps only the newest: the old worker stops with its last reference
    gc.collect()
    assert wait_gone(pid, timeout=60)
    again = satchel.bundles.get("shout:1")
    again.close()
    assert satchel.bundles.get("shout:1") is not again  # a closed proxy is loaded again


def test_the_workers_stop_when_the_interpreter_exits(default_store: dict) -> None:
    code = "from satchel.bundles import shout; print(shout(1)); print(shout.worker_pid, flush=True)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SATCHEL_STORE": default_store["url"]},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "HEY"
    assert wait_gone(int(lines[1]), timeout=30)


_COMPLETE = """
import json
import satchel
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell

bundles = satchel.bundles  # reached without importing it first
shell = InteractiveShell.instance()
shell.run_cell("import satchel.bundles")
out = {}
with provisionalcompleter():
    for text in ("satchel.bundles.", "satchel.bundles.my", "from satchel.bundles import sh"):
        out[text] = sorted({c.text for c in shell.Completer.completions(text, len(text))})
out["loaded"] = len(bundles._loaded)
print(json.dumps(out))
"""


def test_ipython_completes_the_names_without_loading_them(default_store: dict) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _COMPLETE],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SATCHEL_STORE": default_store["url"]},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    completed = json.loads(out.stdout.splitlines()[-1])
    assert {"shout", "my_model", "stamp", "get"} <= set(completed["satchel.bundles."])
    assert completed["satchel.bundles.my"] == ["my_model"]
    assert "shout" in completed["from satchel.bundles import sh"]
    assert completed["loaded"] == 0  # offering a name does not load its bundle


# -- the HTML summaries -----------------------------------------------------------------------------


def test_loaded_function_summary_escapes_and_shows_its_workers(default_store: dict) -> None:
    from satchel.bundles import shout

    markup = shout._repr_html_()
    assert "<script>" not in markup and "<b>shout" not in markup
    cold = Summary(markup)
    assert cold.kind == "satchel loaded function" and cold.title == "shout:1"
    assert cold.doc == 'Repeat a label <script>alert("x")</script> & <b>shout</b> it.'
    assert cold.rows["signature"] == "shout(n: int, label: str = 'hey') -> str"
    assert cold.rows["example"] == "shout(n=3, label='ho')"
    assert cold.rows["version"] == "1"
    assert cold.rows["reference"] == str(default_store["shout"])
    assert cold.rows["requested"] == "(nothing)" and "python 3.11" in cold.rows["environment"]
    assert any(item.startswith("fastavro ") for item in cold.items["packages"])
    assert cold.rows["workers"] == "none yet: the first call starts one"
    assert "by " in cold.rows["exported"]
    shout(1)
    warm = Summary(shout._repr_html_())
    assert warm.rows["workers"] == f"1 of 1 running (pids {shout.worker_pid})"
    shout.close()
    assert Summary(shout._repr_html_()).rows["workers"] == "closed"
    text = repr(shout)
    assert "\n" not in text and len(text) < 150 and text.startswith("<satchel.LoadedFunction shout(")


@pytest.mark.slow
def test_a_jupyter_kernel_shows_the_summary_and_the_short_repr(default_store: dict, tmp_path: Path) -> None:
    from tests.kernels import run_cells

    cells = [
        "from satchel.bundles import shout\nshout(2)",
        "shout",
        "import satchel\nsatchel.Environment(python='3.11')",
    ]
    outputs = run_cells(cells, tmp_path / "jupyter", env={"SATCHEL_STORE": default_store["url"]})
    # each cell's value (its execute_result: the other outputs, progress, have no execution_count)
    called, shown, env = ([out["data"] for out in cell if "execution_count" in out] for cell in outputs)
    assert called == [{"text/plain": "'HEY HEY'"}]
    (data,) = shown
    assert data["text/plain"].startswith(
        "<satchel.LoadedFunction shout(n: int, label: str = 'hey') -> str from "
    )
    summary = Summary(data["text/html"])
    assert summary.title == "shout:1" and summary.rows["workers"].startswith("1 of 1 running (pids ")
    assert env[0]["text/plain"] == "Environment(python='3.11')"
    assert Summary(env[0]["text/html"]).title == "virtual environment"


def test_a_replaced_worker_shows_with_its_cause(default_store: dict) -> None:
    with satchel.load(default_store["die"]) as die:
        assert "restarts" not in Summary(die._repr_html_()).rows
        with pytest.raises(satchel.WorkerCrashed):
            die(3)
        assert die(0) == 0  # in a new worker
        assert Summary(die._repr_html_()).rows["restarts"] == "1 (crash 1)"


def test_bundle_ref_summary_and_an_unreadable_one(default_store: dict) -> None:
    ref = default_store["stamp"]
    summary = Summary(ref._repr_html_())
    assert summary.kind == "satchel bundle" and summary.title == "stamp:1"
    assert (
        summary.rows["signature"]
        == "stamp(when: datetime.date, scores: list[float], weight: float = 1.0) -> str"
    )
    assert "example" not in summary.rows and summary.doc == "Say when and how much."
    latest = BundleRef.parse("stamp")  # unpinned: the summary names the version it found
    assert Summary(latest._repr_html_()).rows["reference"] == str(ref)
    assert repr(ref) == f"<BundleRef {ref.store}#stamp:1@sha256:{ref.digest[:12]}…>"
    gone = BundleRef(default_store["url"], "ghost", 7)
    broken = Summary(gone._repr_html_())
    assert "BundleNotFound" in broken.rows["unreadable"] and "ghost:7" in broken.rows["unreadable"]


def test_environment_summary_collapses_long_lists(default_store: dict) -> None:
    pypi = [f"package-{i}==1.{i}" for i in range(12)]
    env = satchel.Environment(python="3.11", pypi=pypi, conda=["numpy=2.1"], channels=["conda-forge"])
    summary = Summary(env._repr_html_())
    assert summary.kind == "satchel environment" and summary.title == "conda"
    assert summary.details["pypi"] == "12 requirements" and summary.items["pypi"] == pypi
    assert summary.items["conda"] == ["numpy=2.1"] and "conda" not in summary.details  # short: not collapsed
    assert summary.rows["channels"] == "conda-forge"
    text = repr(env)
    assert text == (
        "Environment(python='3.11', pypi=[package-0==1.0, package-1==1.1, package-2==1.2 (+9 more)], "
        "conda=[numpy=2.1], channels=[conda-forge])"
    )
    base = satchel.Environment.resolved(read_bundle(default_store["stamp"])[0].lock)
    extended = base.extend(pypi=["humanize==4.12.1"])
    summary = Summary(extended._repr_html_())
    assert summary.title == "virtual environment" and summary.items["pypi"] == ["humanize==4.12.1"]
    assert any(item.startswith("fastavro ") for item in summary.items["base packages"])
    lock = extended.base
    assert f"base={lock.env_id[:12]}… ({len(lock.packages)} packages" in repr(extended)
    assert "\n" not in repr(extended)


def test_run_summary(store_url: str) -> None:
    from tests.flows.helpers import run_flow

    run = run_flow("runner", "foreach", "ForeachFlow", width=3)
    summary = Summary(run._repr_html_())
    assert summary.kind == "satchel flow run" and summary.title == run.pathspec
    assert summary.rows["flow"] == "ForeachFlow" and summary.rows["run"] == run.id
    assert summary.rows["status"] == "successful" and summary.items["parameters"] == ["width = 3"]
    assert "square: 3 tasks" in summary.items["steps"] and summary.items["steps"][0] == "start: 1 task"
    failed = run_flow("runner", "failing", "FailingFlow", expect_ok=False)
    summary = Summary(failed._repr_html_())
    assert summary.rows["status"] == "failed"
    assert (
        "boom: 1 task, 1 failed" in summary.items["steps"]
        and "end: no finished task" in summary.items["steps"]
    )
    assert repr(failed) == f"Run('{failed.pathspec}', failed)"


# -- the example call -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "example", "message", "parameter"),
    [
        (
            nf.stamp,
            {"when": "soon", "scores": [1.0]},
            r"example= of 'stamp': parameter 'when': expected",
            "when",
        ),
        (nf.stamp, {"when": None, "scores": [1.0]}, r"parameter 'when'", "when"),
        (nf.stamp, {"scores": [1.0]}, r"example= of 'stamp': missing parameter 'when'", "when"),
        (
            nf.stamp,
            {"when": "x", "score": [1.0]},
            r"unknown parameter 'score' \(parameters: when, scores, weight\)",
            "score",
        ),
        (nf.stamp, [1, 2], r"example= of 'stamp' takes a dict of parameter name -> value", None),
        (
            nf.weigh.bind(model={"a": 2}),
            {"model": {}, "x": 1.0},
            r"'model' bound, so not an argument",
            "model",
        ),
    ],
)
def test_an_example_that_does_not_fit_is_refused_naming_the_parameter(
    store_url: str, fn, example, message: str, parameter: str | None
) -> None:
    with pytest.raises(ArgumentError, match=message) as caught:
        fn.export(name="bad", store=store_url, example=example)
    assert getattr(caught.value, "parameter", None) == parameter
    assert not list(Path(store_url.removeprefix("file://")).glob("bundles/*/*.json"))  # nothing written


def test_the_example_is_stored_in_json_form_and_old_bundles_read(store_url: str) -> None:
    import datetime

    example = {"when": datetime.date(2024, 5, 1), "scores": [1, 2.5]}
    ref = nf.stamp.export(name="stamp", store=store_url, example=example)
    bundle, _ = read_bundle(ref)
    assert bundle.example == {"when": "2024-05-01", "scores": [1.0, 2.5]}
    plain = nf.stamp.export(name="plain", store=store_url)  # as every bundle before examples
    assert read_bundle(plain)[0].example is None
    # an example decorated on a function travels through bind, and export(example=) replaces it
    assert read_bundle(nf.shout.export(name="s", store=store_url))[0].example == {"n": 3, "label": "ho"}
    assert read_bundle(nf.shout.export(name="s", store=store_url, example={"n": 1}))[0].example == {"n": 1}
    # a document whose example is not an object is refused, naming the field
    path = Path(store_url.removeprefix("file://")) / "bundles" / "stamp" / "1.json"
    doc = json.loads(path.read_text())
    doc["interface"]["example"] = ["not", "an", "object"]
    path.write_text(json.dumps(doc))
    with pytest.raises(BundleFormatError, match=r"interface\.example' is list"):
        read_bundle(f"{store_url}#stamp:1")


def test_openapi_shows_the_example_and_it_calls(default_store: dict) -> None:
    from satchel.serving import create_app
    from tests.serving.running import RunningServer

    fns = {"shout": satchel.load(default_store["shout"]), "stamp": satchel.load(default_store["stamp"])}
    try:
        with (
            RunningServer(create_app(fns)) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            doc = client.get("/openapi.json").json()
            body = doc["paths"]["/v1/functions/shout:invoke"]["post"]["requestBody"]["content"][
                "application/json"
            ]
            assert body["example"] == {"n": 3, "label": "ho"}
            reply = client.post("/v1/functions/shout:invoke", json=body["example"])
            assert reply.status_code == 200 and reply.json() == {"result": "HO HO HO"}
            generated = doc["paths"]["/v1/functions/stamp:invoke"]["post"]["requestBody"]["content"]
            assert set(generated["application/json"]["example"]) == {"when", "scores", "weight"}
    finally:
        for fn in fns.values():
            fn.close()


def test_inspect_shows_the_example(default_store: dict) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "satchel", "inspect", "shout"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert '  example     {"label": "ho", "n": 3}' in out.stdout.splitlines()
