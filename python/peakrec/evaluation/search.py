"""MRR@k and NDCG@k of search pages on queries with known target items.

``queries.jsonl`` (from ``peakrec demo-data``) holds one ``{"query", "lang", "targets": [...]}`` per
line: every item matching the query's brand, attribute and category. Each query is served once per
mode (``peakrec.pipeline.search.MODES``: BM25 only, vector only, fused, fused + personalised) for
one shopper drawn (seeded) from the bundle's users, under that shopper's eligibility rules, so the
modes differ only in how candidates are found and ordered. Binary relevance: an item is relevant
when it is one of the query's targets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from peakrec.errors import InvalidInputError
from peakrec.pipeline.recommender import Recommender
from peakrec.pipeline.search import MODES
from peakrec.pipeline.types import Page, SearchRequest, Shopper


@dataclass(frozen=True)
class SearchQuery:
    query: str
    targets: frozenset[str]
    lang: str = ""


def read_queries(path: str | Path) -> list[SearchQuery]:
    """Reads ``queries.jsonl``; a line without a query or targets is an error naming the line."""
    path = Path(path)
    out = []
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise InvalidInputError(f"{path.name} line {n}: not JSON ({err.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("query"), str):
                raise InvalidInputError(f'{path.name} line {n}: "query" must be a string')
            targets = rec.get("targets")
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise InvalidInputError(f'{path.name} line {n}: "targets" must be a list of item ids')
            out.append(SearchQuery(rec["query"], frozenset(targets), str(rec.get("lang", ""))))
    return out


def mrr_ndcg(ranked: list[str], targets: frozenset[str], k: int) -> tuple[float, float]:
    """Reciprocal rank of the first target in the top ``k`` and binary NDCG@k."""
    hits = [item in targets for item in ranked[:k]]
    rr = next((1.0 / (i + 1) for i, hit in enumerate(hits) if hit), 0.0)
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(targets), k)))
    return rr, (dcg / ideal if ideal > 0 else 0.0)


@dataclass
class SearchEval:
    k: int
    queries: int = 0
    skipped: int = 0
    mrr: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODES, 0.0))
    ndcg: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODES, 0.0))
    degraded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))

    def summary(self) -> dict:
        n = max(self.queries, 1)
        return {
            "k": self.k,
            "queries": self.queries,
            "skipped": self.skipped,
            "modes": {
                m: {
                    f"mrr@{self.k}": round(self.mrr[m] / n, 4),
                    f"ndcg@{self.k}": round(self.ndcg[m] / n, 4),
                    "degraded": self.degraded[m],
                }
                for m in MODES
            },
        }


def evaluate_search(
    recommender: Recommender,
    queries: list[SearchQuery],
    k: int = 10,
    seed: int = 0,
    progress: bool = True,
    now: float | None = None,
) -> SearchEval:
    """Serves every query in every mode for a seeded random warm shopper, at ``now`` (unix
    seconds; None = the wall clock); queries without a target in the bundle are skipped."""
    bundle = recommender.bundle
    users = np.asarray(bundle.users.ids)
    warm = np.flatnonzero(np.asarray(bundle.users.has_vector))
    rng = np.random.default_rng(seed)
    result = SearchEval(k=k)
    known_ids = set(np.asarray(bundle.items.ids).tolist())
    for q in tqdm(queries, desc="search eval", unit="query", disable=not progress, leave=False):
        targets = q.targets & known_ids
        if not targets or not q.query.strip():
            result.skipped += 1
            continue
        user = str(users[rng.choice(warm)]) if len(warm) else ""
        request = SearchRequest(query=q.query, shopper=Shopper(user_id=user), page=Page(page_size=k, now=now))
        result.queries += 1
        for mode in MODES:
            rec = recommender.search(request, mode=mode)
            rr, ndcg = mrr_ndcg(rec.item_ids, targets, k)
            result.mrr[mode] += rr
            result.ndcg[mode] += ndcg
            result.degraded[mode] += int(rec.degraded)
    return result
