"""Search recall: BM25 candidates and hashed-token vector recall, fused by reciprocal rank fusion.

Both sources only ever return items the request's rules allow: BM25 results are checked in Rust
(``Catalog.check_rows``) and deepened until enough eligible matches are found or the matches run
out; vector recall goes through the same filter-aware ``retrieve`` as Storefront. The fused list
then goes through the same ranking engine as Storefront (see ``Recommender.search``). Fusion is
reciprocal rank fusion specialised to lists of distinct rows, so one sort also gives which source
found each row (tests/fusion.py holds the general form it is tested against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from peakrec.config import RetrievalConfig, SearchConfig
from peakrec.retrieval.search import retrieve
from peakrec.retrieval.text import query_vector

# What ranks a search page: "bm25"/"vector" use one source, "fused" both (text relevance only),
# "personalised" (the service's) blends in the shopper's vector. The others exist for evaluation.
MODES = ("bm25", "vector", "fused", "personalised")


@dataclass
class Recalled:
    """Fused candidates: ``rows`` int64, ``text`` float32 in [0, 1] (RRF scaled by its maximum),
    ``in_bm25``/``in_vector`` bool per row; ``known_tokens`` False when BM25 matched nothing at all."""

    rows: np.ndarray
    text: np.ndarray
    in_bm25: np.ndarray
    in_vector: np.ndarray
    known_tokens: bool
    eligible_count: int | None
    partial: bool = False


def fuse(
    lists: list[np.ndarray], weights: list[float], k: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``reciprocal_rank_fusion`` for lists of distinct rows (what both sources return), in one
    sort, plus ``found_in`` uint8 per row: bit i set when list i holds the row.

    Returns ``(rows int64[m], scores float64[m], found_in uint8[m])``, score descending then row.
    """
    if not lists or sum(len(x) for x in lists) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint8)
    rows = np.concatenate(lists).astype(np.int64, copy=False)
    contrib = np.concatenate(
        [w / (k + np.arange(1, len(x) + 1, dtype=np.float64)) for x, w in zip(lists, weights, strict=True)]
    )
    bits = np.concatenate([np.full(len(x), 1 << i, np.uint8) for i, x in enumerate(lists)])
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    unique = rows[starts]
    scores = np.add.reduceat(contrib[order], starts)
    found_in = np.bitwise_or.reduceat(bits[order], starts)
    best = np.lexsort((unique, -scores))
    return unique[best], scores[best], found_in[best]


class TextRecall:
    """The two search sources over one bundle; built once per bundle."""

    def __init__(self, bundle, vectors, catalog, retrieval: RetrievalConfig, config: SearchConfig):
        self.text_index = bundle.text_index
        self.table = np.ascontiguousarray(bundle.token_table, dtype=np.float32)
        params = (bundle.manifest.get("text") or {}).get("token_table") or {}
        self.alternate_sign = bool(params.get("alternate_sign", True))
        self.index = bundle.index
        self.vectors = vectors
        self.catalog = catalog
        self.retrieval = retrieval
        self.config = config

    def bm25(self, query: str, rules, need: int) -> tuple[np.ndarray, bool]:
        """Eligible BM25 matches, best first (int64): at least ``need`` when that many exist.
        Also whether any query token is in the vocabulary."""
        top = 2 * need  # most requests: one search (the eligible share is rarely below half)
        while True:
            rows, _ = self.text_index.search(query, top)
            if len(rows) == 0:
                return rows, False
            ok = self.catalog.check_rows(rules, rows).view(bool)
            if ok.sum() >= need or len(rows) < top:
                return rows[ok], True
            top *= 4  # deepen: the eligible share among matches is lower than hoped

    def vector(self, query: str, rules, need: int, deadline: float | None):
        """Eligible items nearest the query's hashed-token vector, or None when it has none."""
        q = query_vector(query, self.table, alternate_sign=self.alternate_sign)
        if not np.any(q):
            return None
        return retrieve(
            self.index, self.vectors, self.catalog, rules, q[None, :], need, self.retrieval, deadline
        )

    def recall(self, query: str, rules, page_end: int, mode: str, deadline: float | None) -> Recalled:
        cfg = self.config
        need = max(cfg.min_candidates, math.ceil(page_end * cfg.candidates_factor))
        # Depths do not depend on the page for the first pages (up to 32 and 50 items), so paging
        # through them splits one ranking exactly.
        vector_need = max(cfg.min_vector_candidates, math.ceil(page_end * cfg.vector_candidates_factor))
        lists, weights, sources = [], [], []
        known = True
        if mode != "vector":
            bm25_rows, known = self.bm25(query, rules, need)
            lists.append(bm25_rows)
            weights.append(cfg.bm25_weight)
            sources.append("bm25")
        eligible_count, partial = None, False
        if mode != "bm25":
            got = self.vector(query, rules, vector_need, deadline)
            if got is not None:
                eligible_count, partial = got.eligible_count, got.partial
                lists.append(got.rows)
                weights.append(cfg.vector_weight)
                sources.append("vector")
            if mode == "vector":
                known = got is not None
        rows, scores, found_in = fuse(lists, weights, cfg.rrf_k)
        best = sum(weights) / (cfg.rrf_k + 1)  # first in every list
        text = (scores / best if best > 0 else scores).astype(np.float32)
        bit = {name: 1 << i for i, name in enumerate(sources)}
        return Recalled(
            rows=rows,
            text=text,
            in_bm25=(found_in & bit.get("bm25", 0)) != 0,
            in_vector=(found_in & bit.get("vector", 0)) != 0,
            known_tokens=known,
            eligible_count=eligible_count,
            partial=partial,
        )
