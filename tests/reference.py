"""Vectorised numpy versions of the eligibility rules and of filter + score + brand-capped top-k.

These are the oracles of the tests and the baselines of the benchmarks: slow, plain and easy to
check by eye. The request path uses the Rust kernels (``_core.Catalog``) instead.
"""

from __future__ import annotations

import numpy as np


def eligible_mask(
    items,
    stock: np.ndarray,
    price: np.ndarray,
    available: np.ndarray,
    region: int,
    now: int,
    price_min: float = -np.inf,
    price_max: float = np.inf,
    brand_ok: np.ndarray | None = None,
    category_ok: np.ndarray | None = None,
    member_brands: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """bool[n] (or bool[len(rows)]): which items the rules allow. Same rules as
    ``peakrec_core::eligibility`` (see its module docs)."""
    sel = slice(None) if rows is None else rows
    brand = np.asarray(items.brand)[sel]
    ok = (stock[sel] > 0) & (available[sel] != 0)
    word = np.asarray(items.regions)[sel, region >> 6]
    ok &= ((word >> np.uint64(region & 63)) & np.uint64(1)).astype(bool)
    p = price[sel]
    ok &= (p >= price_min) & (p <= price_max)
    if brand_ok is not None:
        ok &= brand_ok[brand].astype(bool)
    if category_ok is not None:
        ok &= category_ok[np.asarray(items.category)[sel]].astype(bool)
    member_only = np.asarray(items.member_only)[sel] != 0
    is_member = member_brands[brand].astype(bool) if member_brands is not None else np.zeros_like(ok)
    ok &= ~member_only | is_member
    start = np.asarray(items.presale_start)[sel]
    end = np.asarray(items.presale_end)[sel]
    # Sellable once launched, and before launch inside its presale window (a presale window never
    # hides an item that has launched).
    in_presale = (start != 0) & (now >= start) & (now <= end)
    ok &= in_presale | (np.asarray(items.launch_ts)[sel] <= now)
    if excluded is not None and len(excluded):
        if rows is None:
            ok[excluded] = False
        else:
            ok &= ~np.isin(rows, excluded)
    return ok


def filter_rank_brand_cap(
    items,
    stock,
    price,
    available,
    region: int,
    now: int,
    rows: np.ndarray,
    relevance: np.ndarray,
    k: int,
    max_per_brand: int,
    popularity: np.ndarray | None = None,
    popularity_weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` eligible candidates by score with at most ``max_per_brand`` per brand (filled past
    the cap with the best remaining only when the capped picks cannot fill ``k``), as numpy does
    it: ``(rows, scores)`` best first, ties by row. ``rows`` must be distinct."""
    ok = eligible_mask(items, stock, price, available, region, now, rows=rows)
    rows, score = rows[ok], relevance[ok].astype(np.float32)
    if popularity is not None and popularity_weight:
        score = score + np.float32(popularity_weight) * popularity[rows]
    order = np.lexsort((rows, -score))
    rows, score = rows[order], score[order]
    brand = np.asarray(items.brand)[rows]
    # Rank of each candidate within its brand, in score order.
    by_brand = np.lexsort((np.arange(len(rows)), brand))
    sorted_brand = brand[by_brand]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_brand)) + 1]
    within = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    rank_in_brand = np.empty(len(rows), np.int64)
    rank_in_brand[by_brand] = within
    capped = rank_in_brand < max_per_brand if max_per_brand else np.ones(len(rows), bool)
    picks = np.flatnonzero(capped)[:k]
    if len(picks) < k:
        rest = np.flatnonzero(~capped)[: k - len(picks)]
        picks = np.sort(np.concatenate([picks, rest]))
    return rows[picks], score[picks]
