"""Catalogue records: the fields of items and users, and the checks every record must pass.

Records arrive one at a time (a JSONL line or a Parquet row, as a dict) and are gathered into
column tables (:class:`ItemTable`, :class:`UserTable`). Every error names the file, the line or row,
and the field, e.g. ``items.jsonl line 8123: item_id "A17" appears twice (first on line 12)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from peakrec.catalog.regions import REGION_CODES, SUBDIVISIONS, WORLDWIDE
from peakrec.errors import InvalidInputError

LIFECYCLE = ("awareness", "interest", "purchase", "loyalty")
REGION_SET = frozenset(REGION_CODES)


@dataclass
class Location:
    """Where records came from, for error messages: ``items.jsonl line 12`` or ``items.parquet row 3``."""

    name: str
    unit: str  # "line" or "row"
    numbers: list[int] = field(default_factory=list)  # one per record, 1-based

    def at(self, i: int) -> str:
        return f"{self.name} {self.unit} {self.numbers[i]}"


@dataclass
class ItemTable:
    """Validated items as columns, in input order (row ``i`` is FAISS id ``i``), or in the order of
    the inverted lists once ``reordered`` by the build."""

    where: Location
    item_id: list[str] = field(default_factory=list)
    title: list[str] = field(default_factory=list)
    brand: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    stock: list[int] = field(default_factory=list)
    regions: list[list[str]] = field(default_factory=list)  # codes as given, "*" and "CN" allowed
    launch_ts: list[int] = field(default_factory=list)  # unix seconds
    presale_start: list[int] = field(default_factory=list)  # unix seconds, 0 = none
    presale_end: list[int] = field(default_factory=list)
    member_only: list[bool] = field(default_factory=list)
    campaigns: list[list[str]] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)
    popularity: list[float] = field(default_factory=list)
    embedding: list[Any] = field(default_factory=list)  # list[float] or None per record
    vectors: np.ndarray | None = None  # float32 [n, d] once attached

    def __len__(self) -> int:
        return len(self.item_id)

    def reordered(self, order: np.ndarray) -> ItemTable:
        """The same items with row ``i`` holding row ``order[i]`` of this table (a permutation)."""
        pick = order.tolist()
        columns = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        # A column left empty (``embedding`` when the vectors came from a file) stays empty.
        fields = {
            name: [values[i] for i in pick] if values else values
            for name, values in columns.items()
            if name not in ("where", "vectors")
        }
        where = Location(self.where.name, self.where.unit, [self.where.numbers[i] for i in pick])
        vectors = None if self.vectors is None else np.ascontiguousarray(self.vectors[order])
        return ItemTable(where=where, vectors=vectors, **fields)


@dataclass
class UserTable:
    """Validated users as columns, in input order."""

    where: Location
    user_id: list[str] = field(default_factory=list)
    region: list[str] = field(default_factory=list)
    segments: list[list[str]] = field(default_factory=list)
    lifecycle: list[str] = field(default_factory=list)
    memberships: list[list[str]] = field(default_factory=list)
    purchased: list[list[str]] = field(default_factory=list)
    features: list[list[str]] = field(default_factory=list)  # "key=value" strings
    embedding: list[Any] = field(default_factory=list)
    vectors: np.ndarray | None = None  # float32 [m, d], zero rows for cold users
    has_vector: np.ndarray | None = None  # uint8 [m]

    def __len__(self) -> int:
        return len(self.user_id)


def add_item(table: ItemTable, rec: dict[str, Any], where: str) -> None:
    """Checks one item record and appends it to ``table``."""
    table.item_id.append(_string(rec, "item_id", where))
    table.title.append(_string(rec, "title", where))
    table.brand.append(_string(rec, "brand", where))
    category = _string(rec, "category", where)
    if any(not part.strip() for part in category.split(">")):
        raise InvalidInputError(f'{where}: field "category" has an empty level in "{category}"')
    table.category.append(category)
    table.price.append(_number(rec, "price", where, required=True))
    table.stock.append(_integer(rec, "stock", where))
    table.regions.append(_regions(rec, where))
    table.launch_ts.append(_timestamp(rec, "launch_date", where, required=True))
    start = _timestamp(rec, "presale_start", where, required=False)
    end = _timestamp(rec, "presale_end", where, required=False)
    if (start == 0) != (end == 0):
        raise InvalidInputError(f'{where}: fields "presale_start" and "presale_end" must be given together')
    if start and end <= start:
        raise InvalidInputError(f'{where}: field "presale_end" must be after "presale_start"')
    table.presale_start.append(start)
    table.presale_end.append(end)
    table.member_only.append(_boolean(rec, "member_only", where))
    table.campaigns.append(_strings(rec, "campaigns", where))
    table.tags.append(_strings(rec, "tags", where))
    table.popularity.append(_number(rec, "popularity", where, required=False))
    table.embedding.append(_embedding(rec, where))


def add_user(table: UserTable, rec: dict[str, Any], where: str) -> None:
    """Checks one user record and appends it to ``table``."""
    table.user_id.append(_string(rec, "user_id", where))
    region = _string(rec, "region", where)
    if region not in REGION_SET:
        raise InvalidInputError(f'{where}: field "region": unknown region code "{region}"')
    table.region.append(region)
    table.segments.append(_strings(rec, "segments", where))
    lifecycle = rec.get("lifecycle") or "awareness"
    if lifecycle not in LIFECYCLE:
        raise InvalidInputError(
            f'{where}: field "lifecycle" must be one of {", ".join(LIFECYCLE)}, got {lifecycle!r}'
        )
    table.lifecycle.append(lifecycle)
    table.memberships.append(_strings(rec, "memberships", where))
    table.purchased.append(_strings(rec, "purchased", where))
    table.features.append(_features(rec, where))
    table.embedding.append(_embedding(rec, where))


def expand_regions(codes: list[str]) -> list[str]:
    """Concrete region codes for an item's ``regions``: ``"*"`` is every region, a country
    with subdivisions in the list (``"CN"``) also covers them (``"CN-ZJ"``, ...)."""
    if WORLDWIDE in codes:
        return list(REGION_CODES)
    out = list(codes)
    for code in codes:
        out.extend(SUBDIVISIONS.get(code, ()))
    return out


def _missing(rec: dict[str, Any], name: str, where: str) -> Any:
    value = rec.get(name)
    if value is None:
        raise InvalidInputError(f'{where}: missing required field "{name}"')
    return value


def _string(rec: dict[str, Any], name: str, where: str) -> str:
    value = rec.get(name)
    if type(value) is str:  # fast path for the common, valid case
        stripped = value.strip()
        if stripped:
            return stripped
    value = _missing(rec, name, where)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInputError(f'{where}: field "{name}" must be a string, got {type(value).__name__}')
    value = str(value).strip()
    if not value:
        raise InvalidInputError(f'{where}: field "{name}" is empty')
    return value


def _number(rec: dict[str, Any], name: str, where: str, *, required: bool) -> float:
    value = rec.get(name)
    if (type(value) is float or type(value) is int) and 0 <= value < math.inf:  # fast path
        return float(value)
    value = _missing(rec, name, where) if required else rec.get(name, 0.0)
    if value is None:
        value = 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f'{where}: field "{name}" must be a number, got {value!r}')
    if not math.isfinite(value):
        raise InvalidInputError(f'{where}: field "{name}" must be finite, got {value}')
    if value < 0:
        raise InvalidInputError(f'{where}: field "{name}" must not be negative, got {value}')
    return float(value)


def _integer(rec: dict[str, Any], name: str, where: str) -> int:
    value = _missing(rec, name, where)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f'{where}: field "{name}" must be an integer, got {value!r}')
    if value < 0:
        raise InvalidInputError(f'{where}: field "{name}" must not be negative, got {value}')
    if value > 2**31 - 1:
        raise InvalidInputError(f'{where}: field "{name}" is too large: {value}')
    return value


def _boolean(rec: dict[str, Any], name: str, where: str) -> bool:
    value = rec.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool) and value not in (0, 1):
        raise InvalidInputError(f'{where}: field "{name}" must be true or false, got {value!r}')
    return bool(value)


def _strings(rec: dict[str, Any], name: str, where: str) -> list[str]:
    value = rec.get(name)
    if value is None:
        return []
    if type(value) is list and all(
        type(v) is str and v and not v[0].isspace() and not v[-1].isspace() for v in value
    ):
        return value  # fast path: already clean strings
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise InvalidInputError(f'{where}: field "{name}" must be a list of strings, got {value!r}')
    out = []
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise InvalidInputError(f'{where}: field "{name}" must hold non-empty strings, got {v!r}')
        out.append(v.strip())
    return out


def _regions(rec: dict[str, Any], where: str) -> list[str]:
    codes = _strings(rec, "regions", where)
    if not codes:
        raise InvalidInputError(f'{where}: field "regions" must list at least one region')
    for code in codes:
        if code != WORLDWIDE and code not in REGION_SET:
            raise InvalidInputError(f'{where}: field "regions": unknown region code "{code}"')
    return codes


def _timestamp(rec: dict[str, Any], name: str, where: str, *, required: bool) -> int:
    """Unix seconds from an int, an ISO date ("2026-11-01") or datetime ("2026-11-01T08:00:00+08:00").
    Times without a zone are UTC."""
    value = _missing(rec, name, where) if required else rec.get(name)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InvalidInputError(f'{where}: field "{name}" must be a date, got {value!r}')
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InvalidInputError(
                f'{where}: field "{name}" must be an ISO date or unix seconds, got {text!r}'
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp())
    raise InvalidInputError(f'{where}: field "{name}" must be a date, got {value!r}')


def _features(rec: dict[str, Any], where: str) -> list[str]:
    value = rec.get("features")
    if value is None:
        return []
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, (list, tuple)):
                out.extend(f"{k}={x}" for x in v)
            elif v is not None:
                out.append(f"{k}={str(v).lower() if isinstance(v, bool) else v}")
        return out
    strings = _strings(rec, "features", where)
    for s in strings:
        if "=" not in s:
            raise InvalidInputError(f'{where}: field "features" entries must be "key=value", got "{s}"')
    return strings


def _embedding(rec: dict[str, Any], where: str) -> list[float] | None:
    value = rec.get("embedding")
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise InvalidInputError(f'{where}: field "embedding" must be a list of numbers')
    return value
