"""Ranking weights, read once from a bundle's ``config.json`` ``"ranking"`` object.

Key names are those ``peakrec build`` writes (python/peakrec/bundle/config.py); weights are in units
of relevance (inner product of query and item vectors, popularity scaled to [0, 1]). Settings the
bundle does not give keep the defaults below; a setting of the wrong type is refused at load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from peakrec.errors import BundleError

LIFECYCLE = ("awareness", "interest", "purchase", "loyalty")


def _lifecycle_weights() -> dict[str, dict[str, float]]:
    # Awareness explores popular and new items; later stages lean on relevance.
    return {
        "awareness": {"relevance": 0.55, "popularity": 0.3, "novelty": 0.15},
        "interest": {"relevance": 0.7, "popularity": 0.2, "novelty": 0.1},
        "purchase": {"relevance": 0.8, "popularity": 0.15, "novelty": 0.05},
        "loyalty": {"relevance": 0.85, "popularity": 0.1, "novelty": 0.05},
    }


@dataclass(frozen=True)
class RankingConfig:
    lifecycle_weights: dict[str, dict[str, float]] = field(default_factory=_lifecycle_weights)
    new_item_window_days: float = 14.0  # an item launched within this many days is new
    new_item_boost: float = 0.15  # plus the stage's novelty weight
    new_item_reserved_share: float = 0.1  # share of each page reserved for new items
    campaign_boost: float = 0.1  # for campaigns without their own boost
    member_boost: float = 0.1
    loyalty_member_boost: float = 0.3  # member boost at the loyalty stage (brand-store items)
    considered_boost: float = 0.15  # purchase stage: categories of the recently viewed items
    session_weight: float = 0.5  # blend of the recent items' mean into the query vector
    interest_session_weight: float = 0.7  # the same at the interest stage (close to recent views)
    max_per_brand: int = 3  # diversity caps per page; 0 = no cap
    max_per_category: int = 5
    candidates_factor: float = 1.25  # candidates retrieved per item up to the page's end
    new_candidates: int = 1024  # most recent new items considered per request
    new_candidates_top: int = 128  # ... of which the most relevant become candidates
    popular_candidates: int = 100  # region-popular items added as candidates (awareness, cold)
    min_retrieval_seconds: float = 0.0005  # less budget left than this: answer with the fallback

    @classmethod
    def from_config(cls, ranking: dict, retrieval: dict | None = None) -> RankingConfig:
        values: dict = {}
        merged = {**{k: v for k, v in (retrieval or {}).items() if k == "session_weight"}, **ranking}
        for name, default in cls().__dict__.items():
            if name not in merged:
                continue
            value = merged[name]
            if name == "lifecycle_weights":
                values[name] = _check_lifecycle(value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BundleError(f"config.json ranking.{name}: expected a number, got {value!r}")
            else:
                values[name] = type(default)(value)
        return cls(**values)

    def stage(self, lifecycle: str) -> dict[str, float]:
        return self.lifecycle_weights.get(lifecycle, self.lifecycle_weights["awareness"])

    def new_slots(self, page_size: int) -> int:
        return math.floor(self.new_item_reserved_share * page_size)


def _check_lifecycle(value) -> dict[str, dict[str, float]]:
    weights = _lifecycle_weights()
    if not isinstance(value, dict) or set(value) - set(LIFECYCLE):
        raise BundleError(f"config.json ranking.lifecycle_weights: keys must be among {LIFECYCLE}")
    for stage, mix in value.items():
        if not isinstance(mix, dict) or set(mix) - {"relevance", "popularity", "novelty"}:
            raise BundleError(f"config.json ranking.lifecycle_weights.{stage}: relevance/popularity/novelty")
        weights[stage] = {**weights[stage], **{k: float(v) for k, v in mix.items()}}
    return weights
