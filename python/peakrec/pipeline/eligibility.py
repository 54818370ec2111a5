"""Stage 2: compile a request's restrictions into ``_core.Rules`` (evaluated in Rust)."""

from __future__ import annotations

import math

import numpy as np

from peakrec import _core
from peakrec.errors import InvalidInputError
from peakrec.pipeline.types import Filters
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
        if filters.price_min is None and filters.price_max is None:
            price_min, price_max = -math.inf, math.inf
        else:
            price_min = -math.inf if filters.price_min is None else float(filters.price_min)
            price_max = math.inf if filters.price_max is None else float(filters.price_max)
            if math.isnan(price_min) or math.isnan(price_max):
                raise InvalidInputError("filters.price_min/price_max: must not be NaN")
            if price_min > price_max:
                raise InvalidInputError(
                    f"filters.price_min {price_min} is above filters.price_max {price_max}"
                )
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
