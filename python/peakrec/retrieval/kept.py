"""Eligibility kept across requests: which rows are live and which each region sells, as bitsets.

The region sets are fixed by the bundle (built on a region's first request, one pass over the
regions column, then kept); the live set (in stock and on sale) changes only when item state
does, and is updated for just the changed rows (``touch``) by whoever changes it:
``ItemState.update``, and ``SharedItemState`` for updates journaled by any worker. The number of
rows both live and in a region is kept with them, so a request knows how many rows it could see
before it searches, in O(1), and a request with few of them scans just those rows
(``_core.Catalog.scan_kept``). Request-level rules (price, brands, exclusions, membership, launch
windows) are checked row by row over the kept rows only.

The counts are an upper bound of a request's eligible count (its own rules can only remove rows);
the live set is a view of the state, so a row changed in the state but not yet touched is
corrected by the row check (never shown when ineligible).
"""

from __future__ import annotations

import threading

import numpy as np

from peakrec import _core


def bitset_words(mask: np.ndarray) -> np.ndarray:
    """uint64[ceil(n / 64)]: ``mask`` (bool[n]) as bitset words (FAISS's packed bitmap order)."""
    packed = np.packbits(mask, bitorder="little")
    return np.pad(packed, (0, -len(packed) % 8)).view(np.uint64)


def summary_words(words: np.ndarray) -> np.ndarray:
    """uint64[ceil(len(words) / 64)]: bit ``w`` set where ``words[w]`` (a bitset) is not zero."""
    return bitset_words(words != 0)


class KeptEligibility:
    """Live and per-region eligible-row bitsets with their counts, kept up to date by ``touch``.

    ``regions`` uint64[n, region_words] (bit ``r`` of row ``i``: sold in region ``r``); ``stock``
    int32[n] and ``available`` uint8[n] are the live columns (read, never written here)."""

    def __init__(self, regions: np.ndarray, stock: np.ndarray, available: np.ndarray):
        self.n = len(stock)
        self._regions = regions
        self._stock = stock
        self._available = available
        self._lock = threading.Lock()  # touch and a region's first build may run on other threads
        self.live = bitset_words((stock > 0) & (available != 0))
        # Bit w set when live word w holds a row: a scan of a sparse live set reads only those.
        self.live_summary = summary_words(self.live)
        self.live_count = _core.bitset_and_count(self.live, self.live)
        self._region_sets: dict[int, np.ndarray] = {}
        self._region_counts: dict[int, int] = {}

    def region(self, region: int) -> tuple[np.ndarray, int]:
        """``(words, count)``: the rows sold in ``region`` (uint64 bitset) and how many of them are
        live now. The set is built on the region's first request and kept."""
        words = self._region_sets.get(region)
        if words is None:
            with self._lock:
                words = self._region_sets.get(region)
                if words is None:
                    column = np.ascontiguousarray(self._regions[:, region >> 6])
                    words = bitset_words((column >> np.uint64(region & 63)) & np.uint64(1) != 0)
                    self._region_counts[region] = _core.bitset_and_count(words, self.live)
                    self._region_sets[region] = words
        return words, self._region_counts[region]

    def touch(self, rows: np.ndarray) -> None:
        """Re-reads the live state of ``rows`` (int64, changed since) and updates the sets and
        counts for those that changed: O(len(rows) x kept regions), not O(n)."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = rows[(rows >= 0) & (rows < self.n)]
        if not len(rows):
            return
        with self._lock:
            now = (self._stock[rows] > 0) & (self._available[rows] != 0)
            word, bit = rows >> 6, (rows & 63).astype(np.uint64)
            was = (self.live[word] >> bit) & np.uint64(1) != 0
            flipped = now != was
            if not flipped.any():
                return
            rows, now, word, bit = rows[flipped], now[flipped], word[flipped], bit[flipped]
            ones = np.uint64(1) << bit
            # rows may share a word: apply bit by bit (few rows change per update)
            for w, one, on in zip(word.tolist(), ones.tolist(), now.tolist(), strict=True):
                mark = np.uint64(1 << (w & 63))
                if on:
                    self.live[w] |= np.uint64(one)
                    self.live_summary[w >> 6] |= mark  # after the row's bit: never a row unmarked
                else:
                    self.live[w] &= ~np.uint64(one)
                    if not self.live[w]:
                        self.live_summary[w >> 6] &= ~mark
            delta = np.where(now, 1, -1)
            self.live_count += int(delta.sum())
            for region in self._region_counts:
                sold = (self._regions[rows, region >> 6] >> np.uint64(region & 63)) & np.uint64(1) != 0
                self._region_counts[region] += int(delta[sold].sum())

    def rebuild(self) -> None:
        """Recomputes every set from the columns (after they were replaced wholesale)."""
        with self._lock:
            self.live[:] = bitset_words((self._stock > 0) & (self._available != 0))
            self.live_summary[:] = summary_words(self.live)
            self.live_count = _core.bitset_and_count(self.live, self.live)
            for region, words in self._region_sets.items():
                self._region_counts[region] = _core.bitset_and_count(words, self.live)
