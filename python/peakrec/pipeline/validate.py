"""Checks of a request's own values: the one place they live (the servicer converts messages and
leaves checking to these). Each raises ``InvalidInputError`` naming the field."""

from __future__ import annotations

import math

import numpy as np

from peakrec.errors import InvalidInputError
from peakrec.pipeline.types import Filters, Page
from peakrec.retrieval.text import check_query as _check_query

MAX_PAGE_SIZE = 500  # items on one page, over gRPC and in Python alike


def check_page(page: Page) -> None:
    size = page.page_size
    # The usual request, in plain ints: three comparisons instead of the checks below.
    if type(size) is int and 1 <= size <= MAX_PAGE_SIZE and type(page.page) is int and page.page >= 0:
        if page.now is None or math.isfinite(page.now):
            return
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"page.page_size: must be between 1 and {MAX_PAGE_SIZE}, got {size!r}")
    if isinstance(page.page, bool) or not isinstance(page.page, (int, np.integer)) or page.page < 0:
        raise InvalidInputError(f"page.page: must be a non-negative integer, got {page.page!r}")
    if page.now is not None and not math.isfinite(page.now):
        raise InvalidInputError(f"page.now: must be finite, got {page.now!r}")


def price_range(filters: Filters) -> tuple[float, float]:
    """``(price_min, price_max)`` with open ends as infinities."""
    if filters.price_min is None and filters.price_max is None:
        return -math.inf, math.inf
    price_min = -math.inf if filters.price_min is None else float(filters.price_min)
    price_max = math.inf if filters.price_max is None else float(filters.price_max)
    if math.isnan(price_min) or math.isnan(price_max):
        raise InvalidInputError("filters.price_min/price_max: must not be NaN")
    if price_min > price_max:
        raise InvalidInputError(f"filters.price_min: {price_min:g} is above filters.price_max {price_max:g}")
    return price_min, price_max


def check_query(query: object) -> str:
    """A usable search query (a str, not empty or whitespace only, at most 256 characters)."""
    if isinstance(query, str) and not query.strip():
        raise InvalidInputError("query: empty")
    return _check_query(query)
