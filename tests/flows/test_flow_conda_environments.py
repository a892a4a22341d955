"""Conda environments and composition in flows: `@environment(conda=..., base=...)` steps solved from the
suite's own channel (tests/fixtures/conda_channel.py), and `satchel.Environment.of(task)`.

The flows are written to a file at test time, as a user writes them: the channel's location, a task or a
bundle to extend are only known then, and an `@environment` step's interpreter imports its flow's file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import satchel
from satchel.core.errors import BundleFormatError, EnvironmentResolutionError
from satchel.flows import Flow, Run, RunFailed, Runner
from satchel.packager.environment_sources import kind_of
from tests.fixtures.conda_channel import served
from tests.flows.helpers import run_flow
from tests.functions import conda_fns

pytestmark = pytest.mark.timeout(600)

HEADER = """\
import sys

import satchel
from satchel.flows import Flow, FlowSpec, environment, step

CHANNEL = {channel!r}
"""

CONDA_FLOW = """
class CondaFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.fit)

    @environment(conda=["humanize=4.9"], channels=[CHANNEL])
    @step
    def fit(self):
        import humanize

        self.prefix = sys.prefix
        self.executable = sys.executable
        self.humanize = humanize.__version__
        self.said = humanize.intcomma(1000)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

# `explain` extends the base as a Task object (from the client, as a user writes it), `again` by its pathspec
EXTENDED_FLOW = """
BASE = Flow("CondaFlow", namespace=None).latest_successful_run["fit"].task


class ExtendedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.explain)

    @environment(base=BASE, pypi=["six==1.17.0"])
    @step
    def explain(self):
        self.versions = versions()
        self.next(self.again)

    @environment(base=BASE.pathspec, pypi=["six==1.17.0"])
    @step
    def again(self):
        self.versions = versions()
        self.next(self.end)

    @step
    def end(self):
        pass


def versions():
    import humanize
    import six

    return {"humanize": humanize.__version__, "six": six.__version__, "prefix": sys.prefix}
"""

BUNDLE_FLOW = """
class OnBundleFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.explain)

    @environment(base=satchel.BundleRef.parse({ref!r}), pypi=["six==1.17.0"])
    @step
    def explain(self):
        import fastavro
        import humanize
        import six

        self.versions = {{"humanize": humanize.__version__, "six": six.__version__}}
        self.fastavro = fastavro.__version__
        self.prefix = sys.prefix
        self.next(self.end)

    @step
    def end(self):
        pass
"""

CONFLICT_FLOW = """
class ConflictFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.explain)

    @environment(base={base!r}, pypi=["humanize==4.12.1"])
    @step
    def explain(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def flow_module(tmp_path: Path, name: str, source: str, channel: Path) -> object:
    """`source` (after HEADER) as the module `name`, written to a file and imported from it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER.format(channel=str(channel)) + source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import name` would: the run pickles artifacts by module
    spec.loader.exec_module(module)
    return module


def run(tmp_path: Path, source: str, flow: str, channel: Path) -> Run:
    module = flow_module(tmp_path, f"{flow.lower()}_{uuid.uuid4().hex[:12]}", source, channel)
    return Runner(getattr(module, flow)).run()


def conda_run(tmp_path: Path, channel: Path) -> Run:
    result = run(tmp_path, CONDA_FLOW, "CondaFlow", channel)
    assert result.successful
    return result


def test_a_conda_step_runs_in_the_prefix_own_interpreter(conda_channel, store_url: str, tmp_path) -> None:
    assert importlib.util.find_spec("humanize") is None  # only the step's environment has it
    task = conda_run(tmp_path, conda_channel.path)["fit"].task
    prefix = Path(task.data.prefix)
    assert (prefix / "conda-meta").is_dir()  # a conda prefix, not a virtual environment
    assert Path(task.data.executable) == prefix / "bin" / "python"
    assert task.data.humanize == "4.9.0" and task.data.said == "1,000"
    recorded = task.record["environment"]
    assert recorded["conda"] == ["humanize=4.9"] and recorded["channels"] == [str(conda_channel.path)]
    assert recorded["lock"]["resolver"] == "rattler" and prefix.name == recorded["env_id"]


def test_a_step_extends_a_task_of_another_run(conda_channel, store_url: str, tmp_path) -> None:
    base = conda_run(tmp_path / "base", conda_channel.path)["fit"].task
    extended = run(tmp_path, EXTENDED_FLOW, "ExtendedFlow", conda_channel.path)
    assert extended.successful
    base_lock = base.environment_lock()
    for step in ("explain", "again"):  # the base as a Task, then as its pathspec
        task = extended[step].task
        # the base's humanize 4.9.0 stays, though the channel has 4.12.1; six 1.17.0 comes from PyPI
        assert task.data.versions["humanize"] == "4.9.0" and task.data.versions["six"] == "1.17.0"
        assert task.data.versions["prefix"] != base.data.prefix
        lock = task.environment_lock()
        packages = {(p.name, p.version, p.sha256) for p in lock.packages}
        assert {(p.name, p.version, p.sha256) for p in base_lock.packages} <= packages
        assert {p.name: p.manager for p in lock.packages}["six"] == "pip"
        assert task.record["environment"]["base"] == base.pathspec


def test_a_step_extends_a_bundle(conda_channel, store_url: str, tmp_path) -> None:
    env = satchel.Environment(conda=["humanize=4.12", "fastavro"], channels=[str(conda_channel.path)])
    ref = satchel.function(environment=env)(conda_fns.where).export(
        name="where", store=store_url, progress=False
    )
    result = run(tmp_path, BUNDLE_FLOW.format(ref=str(ref)), "OnBundleFlow", conda_channel.path)
    assert result.successful
    task = result["explain"].task
    assert task.data.versions == {"humanize": "4.12.1", "six": "1.17.0"}
    assert (Path(task.data.prefix) / "conda-meta").is_dir() and task.data.fastavro == "1.9.7"
    bundle_lock = satchel.Environment.of(str(ref)).base
    assert bundle_lock is not None and bundle_lock == satchel.Environment.of(ref).base
    assert satchel.Environment.of("where").base == bundle_lock  # a bare name: a bundle in SATCHEL_STORE
    lock = task.environment_lock()
    assert {p.sha256 for p in bundle_lock.packages} <= {p.sha256 for p in lock.packages}
    assert {p.name: p.manager for p in lock.packages}["fastavro"] == "conda"  # the base's, kept


def test_a_bundle_base_is_materialized_from_its_store_alone(
    private_channel, store_url: str, tmp_path
) -> None:
    with served(private_channel.path) as server:
        env = satchel.Environment(conda=["humanize=4.9", "fastavro"], channels=[server.url])
        fn = satchel.function(environment=env)(conda_fns.describe)
        ref = fn.export(name="describe", store=store_url, progress=False)
    shutil.rmtree(private_channel.path)  # the server is stopped and its files are gone
    source = BUNDLE_FLOW.format(ref=str(ref)) + '\n\nif __name__ == "__main__":\n    OnBundleFlow()\n'
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "onbundle.py"
    path.write_text(HEADER.format(channel=server.url) + source)
    fresh = tmp_path / "fresh-home"  # no cached blobs, environments or conda packages
    proc = subprocess.run(
        [sys.executable, str(path), "run"],
        env={**os.environ, "SATCHEL_HOME": str(fresh)},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_ = Flow("OnBundleFlow").latest_run
    assert run_ is not None and run_.successful
    assert run_["explain"].task.data.versions == {"humanize": "4.9.0", "six": "1.17.0"}
    assert (fresh / "conda" / "pkgs").is_dir()  # materialized here, from the bundle's store


NAMED_FLOW = """
class NamedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.by_name)

    @environment(named="ml/humanize", pypi=["six==1.17.0"])
    @step
    def by_name(self):
        self.versions = versions()
        self.next(self.by_base)

    @environment(base="ml/humanize:latest", pypi=["six==1.17.0"])
    @step
    def by_base(self):
        self.versions = versions()
        self.next(self.end)

    @step
    def end(self):
        pass


def versions():
    import humanize
    import six

    return {"humanize": humanize.__version__, "six": six.__version__}
"""


def test_a_step_extends_a_named_environment(conda_channel, store_url: str, tmp_path) -> None:
    named = pytest.importorskip("satchel.packager.named_environments")  # lands with named environments
    lock = conda_run(tmp_path / "base", conda_channel.path)["fit"].task.environment_lock()
    named.NamedEnvironments(store_url).publish("ml/humanize", lock)
    result = run(tmp_path, NAMED_FLOW, "NamedFlow", conda_channel.path)
    assert result.successful
    for step in ("by_name", "by_base"):  # named= and base=NAME
        assert result[step].task.data.versions == {"humanize": "4.9.0", "six": "1.17.0"}
        assert {(p.name, p.sha256) for p in lock.packages} <= {
            (p.name, p.sha256) for p in result[step].task.environment_lock().packages
        }
    assert satchel.Environment.of("ml/humanize").base == lock
    # a bare name is a bundle first, then a named environment; neither: one error naming both
    named.NamedEnvironments(store_url).publish("humanize", lock)
    assert satchel.Environment.of("humanize").base == lock
    with pytest.raises(LookupError, match="names neither a bundle nor a named environment") as info:
        satchel.Environment.of("nothing")
    assert "no bundle named 'nothing'" in str(info.value)


def test_an_extension_conflicting_with_a_pinned_base_package(conda_channel, store_url: str, tmp_path) -> None:
    base = conda_run(tmp_path / "base", conda_channel.path)["fit"].task
    with pytest.raises(RunFailed) as info:
        run(tmp_path, CONFLICT_FLOW.format(base=base.pathspec), "ConflictFlow", conda_channel.path)
    message = str(info.value)
    assert "step 'explain'" in message
    assert f"base={base.pathspec!r}" in message and "pypi=['humanize==4.12.1']" in message  # the request
    assert "'humanize==4.12.1' conflicts with humanize 4.9.0" in message  # both packages, both versions
    assert not Flow("ConflictFlow")[info.value.run_id].successful


def test_an_unsolvable_conda_step_names_its_request(conda_channel, store_url: str, tmp_path) -> None:
    source = CONDA_FLOW.replace('conda=["humanize=4.9"]', 'conda=["humanize=99"]')
    with pytest.raises(RunFailed) as info:
        run(tmp_path, source, "CondaFlow", conda_channel.path)
    message = str(info.value)
    assert "step 'fit'" in message
    assert f"conda=['humanize=99'], channels=[{str(conda_channel.path)!r}]" in message


def test_environment_of_a_task_from_the_client(conda_channel, store_url: str, tmp_path) -> None:
    result = conda_run(tmp_path, conda_channel.path)
    task = result["fit"].task
    env = satchel.Environment.of(task)
    assert env.is_conda and env.base is not None
    assert env.base.env_id == task.record["environment"]["env_id"] == Path(task.data.prefix).name
    assert satchel.Environment.of(task.pathspec).base == env.base  # the pathspec, found in SATCHEL_STORE
    assert {p.name: p.version for p in env.base.packages}["humanize"] == "4.9.0"

    with pytest.raises(EnvironmentResolutionError, match="ran in the flow's own interpreter"):
        satchel.Environment.of(result["start"].task)
    with pytest.raises(EnvironmentResolutionError, match="flow CondaFlow has no run '1'"):
        satchel.Environment.of(f"CondaFlow/1/fit/{task.id}")
    with pytest.raises(EnvironmentResolutionError, match="has no finished task '999'"):
        satchel.Environment.of(f"CondaFlow/{result.id}/fit/999")

    # a lock changed in the task's record is not trusted
    ds = task._ds
    key = ds.task_key(result.id, "fit", task.id)
    record = json.loads(ds.store.read_document(key))
    package = next(p for p in record["environment"]["lock"]["packages"] if p["name"] == "humanize")
    package["version"] = "4.12.1"
    ds.store.write_document(key, json.dumps(record).encode())
    changed = Flow("CondaFlow")[result.id]["fit"].task
    with pytest.raises(
        BundleFormatError, match=f"flow task {changed.pathspec}.*not the hash of its packages"
    ):
        changed.environment_lock()


def test_a_pypi_step_records_its_lock_too(store_url: str) -> None:
    task = run_flow("runner", "envstep", "EnvFlow", shards=1)["fit"].task
    env = satchel.Environment.of(task)
    assert env.base is not None and not env.is_conda and env.base.resolver == "uv"
    assert {p.name: p.version for p in env.base.packages}["humanize"] == "4.12.1"
    assert env.base.env_id == task.record["environment"]["env_id"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("file:///tmp/store#model:3", "bundle"),
        ("/tmp/store#model", "bundle"),
        ("model:2", "name"),
        ("ml/sklearn:stable", "named"),
        ("org/ml/sklearn", "named"),
        ("TrainFlow/latest/fit/3", "named"),
        ("TrainFlow/1733350000123456/fit/3", "task"),
    ],
)
def test_what_a_string_names(text: str, kind: str) -> None:
    assert kind_of(text) == kind


@pytest.mark.parametrize("text", ["ml/", "a//b", ""])
def test_a_string_naming_nothing_says_what_is_expected(text: str) -> None:
    with pytest.raises(EnvironmentResolutionError, match="names no environment") as info:
        satchel.Environment.of(text)
    assert "Flow/run_id/step/task_id" in str(info.value) and "team/name[:tag]" in str(info.value)


def test_environment_options_are_checked_when_the_flow_is_defined() -> None:
    from satchel.flows import environment

    with pytest.raises(TypeError, match=r"conda=\.\.\.\) takes a list of strings, not one string"):
        environment(conda="humanize")
    with pytest.raises(ValueError, match="one of named= and base="):
        environment(named="ml/sklearn", base="model:1")
    with pytest.raises(TypeError, match="base=...\\) takes a flow Task"):
        environment(base=3)
