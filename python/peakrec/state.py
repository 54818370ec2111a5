"""Live item state: stock, price and availability, apart from the immutable bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from peakrec.retrieval.kept import KeptEligibility


@dataclass
class ItemState:
    """Mutable per-item columns, row-aligned with a bundle's items.

    ``stock`` int32[n], ``price`` float32[n], ``available`` uint8[n] (0 = taken off sale). The server
    keeps these arrays in a shared-memory file that all workers map; here they are plain arrays.
    Prices must be finite and non-negative (the catalogue reader and the state service check them):
    a request without a price filter does not read prices, so it would not exclude a NaN price.

    Once ``keep`` has been called (``Recommender`` does, on its first request), the eligible-row
    sets kept from these columns follow changes made through ``update``; a change written into the
    arrays directly must be followed by ``kept.touch(rows)`` (or ``kept.rebuild()``).
    """

    stock: np.ndarray
    price: np.ndarray
    available: np.ndarray
    kept: KeptEligibility | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, stock: np.ndarray, price: np.ndarray) -> ItemState:
        """Fresh state from a bundle's build-time stock and price: every item available."""
        return cls(
            stock=np.array(stock, dtype=np.int32),
            price=np.array(price, dtype=np.float32),
            available=np.ones(len(stock), dtype=np.uint8),
        )

    def keep(self, regions: np.ndarray) -> KeptEligibility:
        """The kept eligible-row sets over these columns (``regions``: the bundle's uint64[n, words]
        column), built on the first call."""
        if self.kept is None:
            from peakrec.retrieval.kept import KeptEligibility

            self.kept = KeptEligibility(regions, self.stock, self.available)
        return self.kept

    def update(self, rows, stock=None, price=None, available=None) -> None:
        """Sets the given columns at ``rows`` (int64; values broadcast) and updates the kept sets."""
        rows = np.asarray(rows, dtype=np.int64)
        if stock is not None:
            self.stock[rows] = stock
        if price is not None:
            self.price[rows] = price
        if available is not None:
            self.available[rows] = available
        if self.kept is not None and (stock is not None or available is not None):
            self.kept.touch(rows)
