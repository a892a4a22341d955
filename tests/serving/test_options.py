"""ServeOptions: every serving option in one object, normalised and checked once."""

from __future__ import annotations

import pytest

from satchel.serving.backends import ServeOptions
from satchel.serving.options import APP_DEFAULTS, OptionError


def test_options_are_normalised_once() -> None:
    options = ServeOptions.of(workers="0:2", function_workers={"add": 3}, max_body_bytes="1KiB")
    assert (options.workers, options.function_workers, options.max_body_bytes) == (
        (0, 2),
        {"add": (3, 3)},
        1024,
    )
    assert ServeOptions.of(options) is options
    assert ServeOptions.of(APP_DEFAULTS, debug=True).workers == APP_DEFAULTS.workers


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workers", "4:1"),
        ("function_workers", {"add": "x"}),
        ("max_body_bytes", "huge"),
        ("job_ttl", -1),
        ("poll_interval", 0),
        ("grpc_port", 70000),
        ("token", ""),
        ("replica_cpus", "half"),
    ],
)
def test_a_bad_option_is_named(field: str, value: object) -> None:
    with pytest.raises(OptionError) as info:
        ServeOptions.of(**{field: value})
    assert info.value.option == field


def test_backend_combinations_are_checked() -> None:
    with pytest.raises(OptionError, match="replica_cpus applies to a cluster backend"):
        ServeOptions(replica_cpus=0.5).check_backend()
    with pytest.raises(OptionError, match="gRPC is served by the local backend only"):
        ServeOptions(backend="ray", grpc_port=0).check_backend()
    ServeOptions(backend="ray", replica_cpus=0.5).check_backend()


def test_an_unknown_keyword_is_named() -> None:
    with pytest.raises(TypeError, match="unknown serving option 'wrokers'"):
        ServeOptions.of(wrokers=2)
