"""Filter-aware inverted lists: the middle plan, between the exact scan of few kept rows and the
graph walk of most (``rust/core/src/lists.rs``).

The bundle partitions the items by k-means over their vectors (about ``4 sqrt(n)`` lists, FAISS's
clustering with inner-product assignment, as an ``IndexIVF`` trains its quantizer) and numbers
its rows list by list, so that a list is a range of rows: its kept rows are a run of bitset words
and their vectors lie together. A request probes the lists nearest its query and scores only
their kept rows, until ``factor * need`` rows that its rules admit were scored. How
many that must be for the build's recall target depends on the vectors, so the build measures
``factor`` per share (``measure_factors``) against brute force over randomly kept rows, and stores it
with the lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from peakrec import _core
from peakrec.retrieval.kept import bitset_words

FACTORS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass(frozen=True)
class ItemLists:
    """The partition (``_core.InvertedLists``) and how deep to probe it: ``factors`` holds
    ``(share, factor)`` pairs, shares rising, measured by the build (``measure_factors``): at a kept
    ``share`` a probe scores ``factor * need`` admitted rows for the build's recall target. A factor
    of None: no factor up to ``FACTORS[-1]`` reached the target at that share (nor, a given
    factor's recall falling as the share rises, above it)."""

    lists: _core.InvertedLists
    factors: tuple[tuple[float, int | None], ...]

    def factor(self, share: float) -> int | None:
        """The factor for a kept ``share``: between two measured shares, interpolated
        geometrically (recall changes smoothly with the share); below them, the first one's;
        None from the first share that reached no factor, or above every measured share."""
        points = self.factors
        if not points or share <= points[0][0]:
            return points[0][1] if points else None
        for (s0, f0), (s1, f1) in zip(points, points[1:], strict=False):
            if share <= s1:
                if f0 is None or f1 is None:
                    return None
                return math.ceil(f0 * (f1 / f0) ** (math.log(share / s0) / math.log(s1 / s0)))
        return None

    def target(self, count: int, n: int, need: int) -> int | None:
        """How many admitted rows a probe for ``need`` results scores among ``count`` kept rows
        of ``n``; None when no measured factor holds the recall target at that share, or when
        the probe would score a quarter of the kept rows or more (scanning them is cheaper)."""
        factor = self.factor(count / max(n, 1))
        if factor is None or count <= 4 * factor * need:
            return None
        return factor * need

    @classmethod
    def load(cls, folder: Path, n: int, factors) -> ItemLists:
        """The lists saved in ``folder`` by ``save`` (memory-mapped), checked against ``n`` items."""
        arrays = [np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("centroids", "offsets")]
        return cls(_core.InvertedLists(*arrays, n), parse_factors(factors))


def parse_factors(factors) -> tuple[tuple[float, int | None], ...]:
    """The manifest's ``[[share, factor or null], ...]`` as ``ItemLists.factors``."""
    return tuple((float(share), None if factor is None else int(factor)) for share, factor in factors)


def list_count(n: int) -> int:
    """The number of lists for ``n`` items: a power of two near ``4 sqrt(n)``, at most ``n / 8``."""
    return max(1, min(1 << round(math.log2(4 * math.sqrt(max(n, 1)))), n // 8))


def build_lists(vectors: np.ndarray, nlist: int | None = None, seed: int = 1234, niter: int = 10):
    """``(centroids float32[nlist, d], offsets int64[nlist + 1], order int64[n])`` for ``vectors``
    (float32[n, d]): k-means on up to 64 rows a list, then each row in the list whose centroid has
    the largest inner product with it. ``order`` numbers the rows list by list (input order within
    a list): row ``order[i]`` of ``vectors`` becomes row ``i``, and list ``l`` holds the new rows
    ``offsets[l]`` to ``offsets[l + 1]``."""
    n, d = vectors.shape
    nlist = nlist or list_count(n)
    rng = np.random.default_rng(seed)
    sample = vectors if n <= 64 * nlist else vectors[np.sort(rng.choice(n, 64 * nlist, replace=False))]
    clustering = faiss.Clustering(d, nlist)
    clustering.niter, clustering.seed = niter, seed
    clustering.max_points_per_centroid = 64  # the sample is already that small: no warning
    assign_index = faiss.IndexFlatIP(d)
    clustering.train(np.ascontiguousarray(sample, dtype=np.float32), assign_index)
    centroids = faiss.vector_to_array(clustering.centroids).reshape(nlist, d).astype(np.float32)
    assign_index.reset()
    assign_index.add(centroids)
    assign = np.empty(n, np.int64)
    for start in range(0, n, 65536):  # bounded memory for the distance blocks
        block = np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32)
        assign[start : start + len(block)] = assign_index.search(block, 1)[1][:, 0]
    order = np.argsort(assign, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=nlist))]).astype(np.int64)
    return centroids, offsets, order


def save(folder: Path, centroids: np.ndarray, offsets: np.ndarray, write_npy) -> None:
    """Writes the partition into ``folder`` (``write_npy(path, array)``: the build's writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_npy(folder / "centroids.npy", centroids)
    write_npy(folder / "offsets.npy", offsets)


def measure_factors(
    lists: _core.InvertedLists,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    target: float,
    shares=(0.01, 0.03, 0.1, 0.3, 1.0),
    seed: int = 7,
) -> list[tuple[float, int | None]]:
    """``[(share, factor)]``: at each of ``shares`` (randomly kept rows), the smallest factor in
    ``FACTORS`` with which probing reaches mean recall@``k`` >= ``target`` against brute force;
    None (and no higher share) when none does. ``vectors`` in the lists' row order; ``queries``
    float32[q, d]."""
    n = len(vectors)
    catalog = open_catalog(n)
    stock, price = np.ones(n, np.int32), np.ones(n, np.float32)
    rng = np.random.default_rng(seed)
    factors = []
    for share in shares:
        kept = rng.random(n) < share
        if kept.sum() < 2 * k:
            continue
        rows = np.flatnonzero(kept)
        scores = vectors[rows] @ queries.T  # [kept, q]
        truth = rows[np.argpartition(-scores, k - 1, axis=0)[:k].T]
        words, rules = bitset_words(kept), _core.Rules(stock, price, kept.astype(np.uint8), 0, 0)
        reached = None
        for factor in FACTORS:
            found = [
                _core.probe_lists(lists, catalog, rules, vectors, words, q, k, factor * k, n) for q in queries
            ]
            recall = np.mean([len(np.intersect1d(f[0], e)) / k for f, e in zip(found, truth, strict=True)])
            if recall >= target:
                reached = factor
                break
        factors.append((share, reached))
        if reached is None:
            break  # a higher share needs more still
    return factors


def open_catalog(n: int, brand=None, category=None) -> _core.Catalog:
    """A ``Catalog`` of ``n`` items that every rule admits (sold in every region, launched, neither
    presale nor member-only, in no campaign; brands and categories 0 unless given): only the live
    state restricts it. For measuring the vectors' geometry alone, and for tests."""
    zeros64 = np.zeros(n, np.int64)
    return _core.Catalog(
        np.zeros(n, np.int32) if brand is None else np.asarray(brand, np.int32),
        np.zeros(n, np.int32) if category is None else np.asarray(category, np.int32),
        np.full((n, 2), ~np.uint64(0), np.uint64),
        zeros64,
        zeros64,
        zeros64,
        np.zeros(n, np.uint8),
        np.zeros(n, np.uint64),
        np.zeros(n, np.float32),
    )
