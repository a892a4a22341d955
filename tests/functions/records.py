"""Sample functions with richer types: records, enums, dates, decimals, arrays, pickled values."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from dataclasses import dataclass

import satchel

PLAIN = satchel.Environment(python="3.11")


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


@dataclass
class Customer:
    name: str
    tier: Tier
    since: dt.date
    balance: decimal.Decimal
    tags: list[str]
    referrer: str | None = None


@dataclass
class Invoice:
    customer: str
    total: decimal.Decimal
    issued: dt.datetime
    lines: dict[str, int]


@satchel.function(environment=PLAIN)
def bill(customer: Customer, items: dict[str, int], when: dt.datetime) -> Invoice:
    """Bill a customer: pro customers pay half."""
    unit = decimal.Decimal("1.10") if customer.tier is Tier.FREE else decimal.Decimal("0.55")
    total = customer.balance + unit * sum(items.values())
    return Invoice(customer=customer.name, total=total, issued=when, lines=dict(items))


@satchel.function(environment=PLAIN)
def span(pair: tuple[int, str], day: dt.date) -> tuple[str, int]:
    return (f"{pair[1]}@{day.isoformat()}", pair[0] * 2)


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


@satchel.function(environment=PLAIN, allow_pickle=True)
def unwrap(thing) -> int:
    return thing.value
