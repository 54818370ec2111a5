"""Stage 2: compile a request's restrictions into ``_core.Rules`` (evaluated in Rust).

The rules are checked against candidates once: by a filter-aware source that needs them to know
how deep to search, or by rank (``Catalog.rank`` with the rules) for the others."""

from __future__ import annotations

import numpy as np

from peakrec import _core
from peakrec.pipeline.request import SIMILAR_ITEMS, Request
from peakrec.pipeline.types import Filters
from peakrec.pipeline.validate import price_range
from peakrec.state import ItemState


class RuleCompiler:
    """Per-bundle vocab look-ups for turning filters into masks; built once at load."""

    def __init__(self, bundle):
        self.bundle = bundle
        self.brands = list(bundle.vocab["brands"])
        self.brand_index = {name: i for i, name in enumerate(self.brands)}
        self.categories = np.asarray(bundle.vocab["categories"], dtype=str)
        self._member_masks: dict[bytes, np.ndarray] = {}

    def brand_mask(self, names) -> np.ndarray:
        mask = np.zeros(len(self.brands), np.uint8)
        idx = [self.brand_index[b] for b in names if b in self.brand_index]
        mask[idx] = 1
        return mask

    def member_mask(self, member_brands: np.ndarray) -> np.ndarray | None:
        """uint8[brands], 1 for the brands in ``member_brands`` (int indices); None when empty.
        Read-only and shared between requests with the same memberships (most shoppers have a few)."""
        if not len(member_brands):
            return None
        if not isinstance(member_brands, np.ndarray):
            member_brands = np.asarray(member_brands, np.int64)
        key = member_brands.tobytes()
        mask = self._member_masks.get(key)
        if mask is None:
            mask = np.zeros(len(self.brands), np.uint8)
            mask[member_brands] = 1
            mask.flags.writeable = False
            if len(self._member_masks) >= 4096:
                self._member_masks.clear()
            self._member_masks[key] = mask
        return mask

    def category_mask(self, prefixes) -> np.ndarray:
        """1 for categories equal to a prefix or below it (path prefix up to a '>' boundary)."""
        mask = np.zeros(len(self.categories), bool)
        for prefix in prefixes:
            mask |= (self.categories == prefix) | np.char.startswith(self.categories, prefix + ">")
        return mask.astype(np.uint8)

    def compile(
        self,
        filters: Filters,
        state: ItemState,
        region: int,
        now: int,
        member_brands: np.ndarray,
        excluded: np.ndarray,
        members: np.ndarray | None = None,
    ) -> _core.Rules:
        """``members``: ``member_mask(member_brands)`` when the caller already has it."""
        price_min, price_max = price_range(filters)
        brand_ok = None
        if filters.brands_allow or filters.brands_block:
            brand_ok = self.brand_mask(filters.brands_allow) if filters.brands_allow else None
            if brand_ok is None:
                brand_ok = np.ones(len(self.brands), np.uint8)
            brand_ok[self.brand_mask(filters.brands_block).view(bool)] = 0
        category_ok = None
        if filters.categories_allow or filters.categories_block:
            if filters.categories_allow:
                category_ok = self.category_mask(filters.categories_allow)
            else:
                category_ok = np.ones(len(self.categories), np.uint8)
            category_ok[self.category_mask(filters.categories_block).view(bool)] = 0
        if members is None:
            members = self.member_mask(member_brands)
        return _core.Rules(
            state.stock,
            state.price,
            state.available,
            region,
            now,
            price_min,
            price_max,
            brand_ok,
            category_ok,
            members,
            excluded if len(excluded) else None,
        )

    def stage(self, req: Request, state: ItemState) -> None:
        """Sets ``req.rules`` (and ``req.unknown_excluded``) from the resolved shopper."""
        resolved = req.resolved
        excluded, req.unknown_excluded = self.excluded(req)
        members = self.member_mask(resolved.member_brands) if len(resolved.member_brands) else None
        req.rules = self.compile(
            req.filters, state, resolved.region, req.now, resolved.member_brands, excluded, members
        )

    def excluded(self, req: Request) -> tuple[np.ndarray, int]:
        """Sorted rows never to show (purchased, excluded by the request, the SimilarItems item)
        and how many of the request's excluded ids are unknown."""
        purchased = req.resolved.purchased_rows
        exclude_items = req.shopper.exclude_items
        similar = req.kind == SIMILAR_ITEMS
        if not len(purchased) and not exclude_items and not similar:
            return _NO_ROWS, 0
        unknown = 0
        excluded = purchased.tolist()
        if exclude_items:
            rows = self.bundle.item_rows(list(exclude_items))
            known = rows >= 0
            unknown = len(rows) - int(np.count_nonzero(known))
            excluded += rows[known].tolist()
        if similar:
            excluded.append(req.item_row)
        # sorted(set()) is np.unique's result, without its array set-up costs on a few rows
        return np.array(sorted(set(excluded)), np.int64), unknown


_NO_ROWS = np.empty(0, np.int64)
