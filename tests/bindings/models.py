"""Types used by the bindings tests (at module level, so their "python" attributes resolve)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
from typing import NamedTuple, NotRequired, TypedDict


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


class Size(str, enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    color: Color = Color.RED


@dataclasses.dataclass
class Row:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Tree:
    value: int
    children: list[Tree] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Order:
    id: int
    when: datetime.datetime
    total: decimal.Decimal
    rows: list[Row]
    shipped: datetime.date | None = None


class Movie(TypedDict):
    title: str
    year: int
    rating: NotRequired[float]


class Pair(NamedTuple):
    left: int
    right: str = "r"


@dataclasses.dataclass
class Other:
    x: float
    z: str
