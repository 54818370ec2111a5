"""Requests and results of the request path, shared by the Python API and the gRPC service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Filters:
    """Shopper- or page-chosen restrictions. Categories match by path prefix ("服饰>女装")."""

    brands_allow: tuple[str, ...] = ()
    brands_block: tuple[str, ...] = ()
    categories_allow: tuple[str, ...] = ()
    categories_block: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None


@dataclass(frozen=True)
class Shopper:
    """Who the page is for. ``user_id`` may be unknown (served as cold); ``context`` holds
    ``key -> value`` features such as ``region``, ``device``, ``segment``. ``vector``, when given,
    is a query embedding from the caller (``d`` finite floats) used instead of the stored one."""

    user_id: str = ""
    region: str = ""
    context: dict[str, str] = field(default_factory=dict)
    recent_items: tuple[str, ...] = ()
    exclude_items: tuple[str, ...] = ()
    member_brands: tuple[str, ...] = ()
    vector: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Page:
    page_size: int = 20
    page: int = 0
    explain: bool = False
    now: float | None = None  # unix seconds; None = time.time()
    deadline: float | None = None  # time.monotonic() by which to answer; None = no budget


@dataclass(frozen=True)
class StorefrontRequest:
    shopper: Shopper = field(default_factory=Shopper)
    filters: Filters = field(default_factory=Filters)
    page: Page = field(default_factory=Page)


@dataclass(frozen=True)
class SearchRequest:
    query: str
    shopper: Shopper = field(default_factory=Shopper)
    filters: Filters = field(default_factory=Filters)
    page: Page = field(default_factory=Page)


@dataclass(frozen=True)
class SimilarItemsRequest:
    item_id: str
    shopper: Shopper = field(default_factory=Shopper)
    filters: Filters = field(default_factory=Filters)
    page: Page = field(default_factory=Page)


@dataclass
class Recommendation:
    """One ranked page. ``rows`` are bundle item rows (int64), ``scores`` float32, both of the
    page's length; ``reasons[i]`` explains item i when the request asked for it."""

    item_ids: list[str]
    rows: np.ndarray
    scores: np.ndarray
    bundle_version: str
    degraded: bool = False
    cold: bool = False
    reasons: list[str] | None = None
    eligible_count: int = 0
    unknown_excluded: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)


class RequestPath(Protocol):
    """What the service calls: ``peakrec.Recommender`` (and test stand-ins) over one bundle."""

    def storefront(self, request: StorefrontRequest) -> Recommendation: ...

    def search(self, request: SearchRequest) -> Recommendation: ...

    def similar_items(self, request: SimilarItemsRequest) -> Recommendation: ...
