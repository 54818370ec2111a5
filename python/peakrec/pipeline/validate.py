"""Checks of a request's own values: the one place they live (the servicer converts messages and
leaves checking to these). Each raises ``InvalidInputError`` naming the field."""

from __future__ import annotations

import math

import numpy as np

from peakrec.errors import InvalidInputError
from peakrec.pipeline.types import Filters, Page
from peakrec.retrieval.text import check_query as _check_query

MAX_PAGE_SIZE = 500  # items on one page, over gRPC and in Python alike
MAX_PAGE = 10_000  # page number: deeper pages are a scraper, not a shopper
MAX_NOW = 4_102_444_800.0  # page.now: unix seconds up to 2100-01-01


def check_page(page: Page) -> None:
    size, number, now = page.page_size, page.page, page.now
    # The usual request, in plain ints: a few comparisons instead of the checks below.
    if type(size) is int and 1 <= size <= MAX_PAGE_SIZE and type(number) is int and 0 <= number <= MAX_PAGE:
        if now is None or 0 <= now <= MAX_NOW:
            return
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"page.page_size: must be between 1 and {MAX_PAGE_SIZE}, got {size!r}")
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 0 <= number <= MAX_PAGE:
        raise InvalidInputError(f"page.page: must be an integer between 0 and {MAX_PAGE}, got {number!r}")
    if now is not None and not 0 <= now <= MAX_NOW:  # also refuses NaN
        raise InvalidInputError(f"page.now: must be unix seconds between 0 and {MAX_NOW:.0f}, got {now!r}")


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
