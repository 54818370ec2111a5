"""Live item state: stock, price and availability, apart from the immutable bundle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ItemState:
    """Mutable per-item columns, row-aligned with a bundle's items.

    ``stock`` int32[n], ``price`` float32[n], ``available`` uint8[n] (0 = taken off sale). The server
    keeps these arrays in a shared-memory file that all workers map; here they are plain arrays.
    Prices must be finite and non-negative (the catalogue reader and the state service check them):
    a request without a price filter does not read prices, so it would not exclude a NaN price.
    """

    stock: np.ndarray
    price: np.ndarray
    available: np.ndarray

    @classmethod
    def from_arrays(cls, stock: np.ndarray, price: np.ndarray) -> ItemState:
        """Fresh state from a bundle's build-time stock and price: every item available."""
        return cls(
            stock=np.array(stock, dtype=np.int32),
            price=np.array(price, dtype=np.float32),
            available=np.ones(len(stock), dtype=np.uint8),
        )
