"""The request as it travels through the stages, and its deadline budget per stage.

The servicer (or a Python caller) hands the pipeline one of the public requests in
``peakrec.pipeline.types``; the pipeline wraps it in a :class:`Request` that each stage reads and
adds to: resolve sets ``resolved``, eligibility ``rules``, the candidate sources ``candidates``,
rank ``ranked``. Nothing else carries state between stages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from peakrec.pipeline.types import Filters, Page, Shopper

if TYPE_CHECKING:
    from peakrec import _core
    from peakrec.pipeline.resolve import Resolved

STOREFRONT, SIMILAR_ITEMS, SEARCH = "storefront", "similar_items", "search"


class Budget:
    """A request's deadline cut into one budget per stage: resolve (with eligibility), sources,
    rank (with respond). Each stage ends at its share of the time left when the request started,
    counted from the start, so time a stage leaves unused goes to the next. No deadline: no
    budget (every ``end`` is None)."""

    __slots__ = ("deadline", "resolve_end", "sources_end")

    def __init__(self, start: float, deadline: float | None, shares: tuple[float, float, float]):
        self.deadline = deadline
        if deadline is None:
            self.resolve_end = self.sources_end = None
        else:
            total = deadline - start
            self.resolve_end = start + total * shares[0]
            self.sources_end = start + total * (shares[0] + shares[1])

    def sources_left(self, now: float) -> float:
        """Seconds the sources stage has from ``now`` (inf without a deadline)."""
        return float("inf") if self.sources_end is None else self.sources_end - now


@dataclass(slots=True)
class Candidates:
    """One source's candidates: ``rows`` int64 and ``relevance`` float32, row-aligned, plus the
    source bit of each. ``checked``: every row is eligible already (a filter-aware source, which
    needs eligibility to know how deep to search); otherwise rank checks them.
    ``eligible_count``: the eligible items the source saw (exact or estimated), when it knows."""

    rows: np.ndarray
    relevance: np.ndarray
    sources: np.ndarray
    checked: bool
    eligible_count: int | None = None
    partial: bool = False  # the source's budget ran out before it was complete


@dataclass(slots=True)
class Request:
    """One request through the stages (see the module docstring)."""

    kind: str  # STOREFRONT, SIMILAR_ITEMS or SEARCH
    shopper: Shopper
    filters: Filters
    page: Page
    now: int  # unix seconds the rules and boosts are evaluated at
    budget: Budget
    query: str | None = None  # SEARCH
    item_row: int = -1  # SIMILAR_ITEMS: the item the page is like
    mode: str = "personalised"  # SEARCH, evaluation: which text sources rank (search.MODES)
    started: float = 0.0
    resolved: Resolved | None = None
    rules: _core.Rules | None = None
    unknown_excluded: int = 0
    candidates: list[Candidates] = field(default_factory=list)
    degraded: bool = False
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, stage: str, since: float) -> float:
        """Records ``stage`` as taking from ``since`` until now; returns now."""
        now = time.monotonic()
        self.stage_seconds[stage] = now - since
        return now
