"""Recall@k and NDCG@k of storefront pages on held-out purchases, beside the region-popular list.

``heldout.jsonl`` (from ``peakrec demo-data``) holds one ``{"user_id", "next_purchases": [...]}`` per
line. Each user gets a storefront page (``page_size=k``) as served, and the region-popular fallback
page under the same eligibility rules as the baseline; users without an embedding are reported
apart ("cold": served from their features only).
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
from peakrec.pipeline.types import Page, Shopper, StorefrontRequest


@dataclass
class Scores:
    users: int = 0
    recall: float = 0.0
    ndcg: float = 0.0
    baseline_recall: float = 0.0
    baseline_ndcg: float = 0.0

    def add(self, recall: float, ndcg: float, base_recall: float, base_ndcg: float) -> None:
        self.users += 1
        self.recall += recall
        self.ndcg += ndcg
        self.baseline_recall += base_recall
        self.baseline_ndcg += base_ndcg

    def summary(self) -> dict[str, float]:
        n = max(self.users, 1)
        out = {
            "users": self.users,
            "recall": self.recall / n,
            "ndcg": self.ndcg / n,
            "baseline_recall": self.baseline_recall / n,
            "baseline_ndcg": self.baseline_ndcg / n,
        }
        out["recall_lift"] = out["recall"] / out["baseline_recall"] if out["baseline_recall"] else math.inf
        out["ndcg_lift"] = out["ndcg"] / out["baseline_ndcg"] if out["baseline_ndcg"] else math.inf
        return out


@dataclass
class StorefrontEval:
    k: int
    all: Scores = field(default_factory=Scores)
    warm: Scores = field(default_factory=Scores)
    cold: Scores = field(default_factory=Scores)
    skipped: int = 0

    def summary(self) -> dict:
        return {"k": self.k, "skipped": self.skipped, "all": self.all.summary(),
                "warm": self.warm.summary(), "cold": self.cold.summary()}  # fmt: skip


def _metrics(page: list[str], truth: set[str], k: int) -> tuple[float, float]:
    hits = np.array([item in truth for item in page[:k]], dtype=np.float64)
    recall = hits.sum() / min(len(truth), k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[: min(len(truth), k)].sum()
    return float(recall), float((hits * discounts[: len(hits)]).sum() / ideal)


def read_heldout(path: str | Path) -> list[tuple[str, list[str]]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                out.append((str(record["user_id"]), [str(i) for i in record["next_purchases"]]))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise InvalidInputError(f"{path} line {line_no}: {err}") from None
    return out


def evaluate_storefront(
    recommender: Recommender,
    heldout: list[tuple[str, list[str]]],
    k: int = 20,
    progress: bool = True,
    now: float | None = None,
) -> StorefrontEval:
    """Scores every held-out user's first storefront page of ``k`` items, served at ``now`` (unix
    seconds; None = the wall clock), beside the region-popular page at the same time (one Python
    call per user: this is offline evaluation, not the request path)."""
    result = StorefrontEval(k)
    bundle = recommender.bundle
    users = recommender.resolver.users
    for user_id, purchases in tqdm(heldout, disable=not progress, desc="eval storefront", unit="user"):
        row = bundle.user_row(user_id)
        truth = set(purchases)
        if row < 0 or not truth:
            result.skipped += 1
            continue
        request = StorefrontRequest(shopper=Shopper(user_id=user_id), page=Page(page_size=k, now=now))
        served = recommender.storefront(request)
        baseline = recommender.fallback(request)
        scores = (*_metrics(served.item_ids, truth, k), *_metrics(baseline.item_ids, truth, k))
        result.all.add(*scores)
        (result.cold if not users.has_vector[row] else result.warm).add(*scores)
    return result
