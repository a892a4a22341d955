"""Richer types end to end, through a real worker: records, enums, tuples, dates, decimals, arrays."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pytest

import satchel
from tests.functions import arrays, records


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (tmp_path_factory.mktemp("rich") / "s").as_uri()


def test_records_enums_dates_decimals(store: str) -> None:
    customer = records.Customer(
        "ana", records.Tier.PRO, dt.date(2024, 2, 29), decimal.Decimal("10.05"), ["a"]
    )
    when = dt.datetime(2026, 11, 26, 5, 40, 1, 123456, tzinfo=dt.timezone.utc)
    expected = records.bill(customer, {"x": 2, "y": 1}, when)
    with satchel.load(records.bill.export(name="bill", store=store)) as fn:
        invoice = fn(customer, {"x": 2, "y": 1}, when)
        # the dataclass is importable here, so it comes back as the class itself
        assert invoice == expected
        assert invoice.total == decimal.Decimal("11.70") and str(invoice.total) == "11.70"
        # a dict with the record's fields works too, and an Enum by name
        as_dict = fn(
            {
                "name": "bo",
                "tier": "FREE",
                "since": dt.date(2020, 1, 1),
                "balance": decimal.Decimal("0"),
                "tags": [],
            },
            {"z": 1},
            when,
        )
        assert as_dict.total == decimal.Decimal("1.10") and as_dict.customer == "bo"
        with pytest.raises(satchel.ArgumentError, match="tier"):
            fn(
                {"name": "x", "tier": "GOLD", "since": dt.date(2020, 1, 1), "balance": 0, "tags": []},
                {},
                when,
            )
        schema = fn.schema["request"]
        assert schema["fields"][0]["type"]["type"] == "record"


def test_tuples(store: str) -> None:
    with satchel.load(records.span.export(name="span", store=store)) as fn:
        assert fn((21, "q"), dt.date(2026, 1, 2)) == ("q@2026-01-02", 42)


def test_numpy_arrays_travel_as_npy_bytes(store: str) -> None:
    with satchel.load(arrays.normalize.export(name="normalize", store=store)) as fn:
        schema = fn.schema
        assert schema["response"]["logicalType"] == "satchel.ndarray"
        x = np.arange(12, dtype=np.float64).reshape(3, 4) - 5
        y = fn(x)
        assert isinstance(y, np.ndarray) and y.shape == (3, 4) and y.dtype == np.float64
        np.testing.assert_allclose(y, x / 6.0)
        big = np.random.default_rng(0).standard_normal(1_000_000)
        np.testing.assert_allclose(fn(big), big / np.abs(big).max())
        packages = {p["name"] for p in fn.metadata["environment"]["packages"]}
        assert {"numpy", "fastavro"} <= packages


def test_pickled_values_mark_bundle_not_portable(store: str) -> None:
    ref = records.unwrap.export(name="unwrap", store=store)
    with satchel.load(ref) as fn:
        assert fn.metadata["interface"]["portable"] is False
        assert fn(records.Opaque(7)) == 7


def test_any_parameter_is_refused_without_opt_in(store: str) -> None:
    plain = satchel.function(records.unwrap.func, environment=records.PLAIN)
    with pytest.raises(satchel.SchemaError, match="thing"):
        plain.export(name="nope", store=store)


def test_module_import_missing_from_environment(store: str) -> None:
    with pytest.raises(satchel.WorkerStartupError) as info:
        satchel.load(arrays.lacks_numpy.export(name="lacks", store=store))
    message = str(info.value)
    assert "No module named 'numpy'" in message and "Environment(pypi=" in message
