"""Namespaces: a Flow shows the current user's runs by default; `namespace()` and tags choose others."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from satchel.flows import Flow, Runner, client, get_namespace, namespace
from tests.flows.helpers import FLOWDEFS, flow_class


@pytest.fixture(autouse=True)
def fresh_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "_namespace", client._UNSET)


@pytest.fixture
def runs(store_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Two runs by alice (one tagged nightly), one by bob (tagged nightly and big, from the command line)."""
    monkeypatch.setenv("SATCHEL_USER", "alice")
    ids = {"alice1": Runner(flow_class("linear", "LinearFlow")).run().id}
    ids["alice2"] = Runner(flow_class("linear", "LinearFlow")).run(tags=["nightly"]).id
    proc = subprocess.run(
        [sys.executable, str(FLOWDEFS / "linear.py"), "run", "--tag=nightly", "--tag=big"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SATCHEL_USER": "bob"},
    )
    assert proc.returncode == 0, proc.stderr
    (ids["bob"],) = [r.id for r in Flow("LinearFlow", namespace="user:bob").runs()]
    return ids


def ids(runs: list) -> list[str]:
    return [r.id for r in runs]


def test_runs_record_their_user_and_the_default_namespace_is_yours(runs: dict[str, str]) -> None:
    assert get_namespace() == "user:alice"
    flow = Flow("LinearFlow")
    assert ids(flow.runs()) == [runs["alice2"], runs["alice1"]]
    assert flow.latest_run.id == runs["alice2"] and flow.latest_successful_run.id == runs["alice2"]
    assert flow[runs["bob"]].user == "bob"  # a run reached by id, whatever the namespace
    assert flow[runs["alice1"]].user == "alice"


def test_switching_namespaces(runs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert namespace("user:bob") == "user:bob"
    assert ids(Flow("LinearFlow").runs()) == [runs["bob"]]
    assert Flow("LinearFlow").latest_run.id == runs["bob"]
    namespace(None)
    assert ids(Flow("LinearFlow").runs()) == [runs["bob"], runs["alice2"], runs["alice1"]]
    namespace("nightly")  # a tag as namespace: everyone's runs carrying it
    assert ids(Flow("LinearFlow").runs()) == [runs["bob"], runs["alice2"]]
    assert ids(Flow("LinearFlow", namespace="user:alice").runs()) == [runs["alice2"], runs["alice1"]]
    monkeypatch.setenv("SATCHEL_USER", "carol")
    namespace(client.default_namespace())
    assert Flow("LinearFlow").runs() == [] and Flow("LinearFlow").latest_run is None


def test_filtering_by_tags(runs: dict[str, str]) -> None:
    everyone = Flow("LinearFlow", namespace=None)
    assert ids(everyone.runs(tag="nightly")) == [runs["bob"], runs["alice2"]]
    assert ids(everyone.runs("nightly", "big")) == [runs["bob"]]
    assert ids(everyone.runs(tag=["nightly", "big"])) == [runs["bob"]]
    assert ids(everyone.runs("nightly", user="alice")) == [runs["alice2"]]
    assert ids(Flow("LinearFlow").runs(tag="big")) == []  # alice's namespace: bob's run is not in it
    assert everyone.runs(tag="nope") == []


def test_bad_namespaces_and_tags_are_named(store_url: str) -> None:
    with pytest.raises(ValueError, match="namespace must be 'user:<name>', a tag, or None"):
        namespace(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace must be"):
        Flow("LinearFlow", namespace="user:")
    with pytest.raises(TypeError, match="tag must be strings"):
        Flow("LinearFlow").runs(tag=[5])  # type: ignore[list-item]
