"""Merging ranked candidate lists from several recall sources."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from peakrec.errors import InvalidInputError


def reciprocal_rank_fusion(
    ranked: Sequence[npt.ArrayLike],
    *,
    k: float = 60.0,
    weights: Sequence[float] | None = None,
    top_n: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of ranked lists of item rows.

    ``ranked`` holds 1-d integer arrays, each best first. A row scores
    ``sum_l weights[l] / (k + rank_l)`` over the lists it appears in (rank from 1; only its first
    appearance in a list counts; negative rows, e.g. FAISS's -1 padding, are ignored).
    Returns ``(rows int64[m], scores float32[m])`` sorted by score descending then row ascending,
    cut to ``top_n`` when given.
    """
    if not k > 0:
        raise InvalidInputError(f"k must be > 0, got {k}")
    if weights is None:
        weights = [1.0] * len(ranked)
    if len(weights) != len(ranked):
        raise InvalidInputError(f"weights has {len(weights)} entries but there are {len(ranked)} lists")
    if top_n is not None and top_n < 0:
        raise InvalidInputError(f"top_n must be >= 0, got {top_n}")
    all_rows, all_scores = [], []
    for i, (rows, weight) in enumerate(zip(ranked, weights, strict=True)):
        rows = np.asarray(rows)
        if rows.ndim != 1 or not (np.issubdtype(rows.dtype, np.integer) or rows.size == 0):
            raise InvalidInputError(
                f"ranked[{i}] must be a 1-d integer array, got {rows.ndim}-d {rows.dtype}"
            )
        if not weight >= 0:
            raise InvalidInputError(f"weights[{i}] must be >= 0, got {weight}")
        rows = rows.astype(np.int64, copy=False)
        ranks = np.arange(1, len(rows) + 1, dtype=np.float64)
        keep = rows >= 0
        unique, first = np.unique(rows[keep], return_index=True)
        all_rows.append(unique)
        all_scores.append(weight / (k + ranks[keep][first]))
    if not all_rows:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    rows = np.concatenate(all_rows)
    unique, inverse = np.unique(rows, return_inverse=True)
    scores = np.bincount(inverse, weights=np.concatenate(all_scores), minlength=len(unique))
    order = np.lexsort((unique, -scores))
    if top_n is not None:
        order = order[:top_n]
    return unique[order], scores[order].astype(np.float32)
