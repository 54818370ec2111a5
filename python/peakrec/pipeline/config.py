"""Ranking weights, read once from a bundle's ``config.json`` (``"ranking"`` object).

Every weight is in units of relevance (inner product of the query and item vectors). Settings the
bundle does not give keep the defaults below; a setting of the wrong type is refused at load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from peakrec.errors import BundleError

LIFECYCLE = ("awareness", "interest", "purchase", "loyalty")


def _stage_popularity() -> dict[str, float]:
    # Awareness explores popular items; later stages lean on relevance.
    return {"awareness": 0.3, "interest": 0.0, "purchase": 0.05, "loyalty": 0.05}


@dataclass(frozen=True)
class RankingConfig:
    relevance: float = 1.0
    popularity_by_stage: dict[str, float] = field(default_factory=_stage_popularity)
    cold_popularity: float = 0.3  # popularity weight for shoppers served from features only
    new_days: float = 14.0  # an item launched within this many days is new
    new_boost: float = 0.05
    new_share: float = 0.1  # share of each page reserved for new items
    new_candidates: int = 1024  # most recent new items considered per request
    popular_candidates: int = 100  # region-popular items added as candidates (awareness, cold)
    member_boost: float = 0.1
    loyalty_member_boost: float = 0.3  # member boost at the loyalty stage
    considered_boost: float = 0.15  # purchase stage: categories of the recently viewed items
    recent_weight: float = 0.3  # blend of the recent items' mean into the query vector
    interest_recent_weight: float = 0.6  # the same at the interest stage
    max_brand_share: float = 0.3  # diversity caps: at most this share of a page per brand
    max_category_share: float = 0.5  # ... and per category (1.0 = no cap)
    candidates_factor: float = 1.25  # candidates retrieved per item shown (room for boosts and caps)
    min_retrieval_seconds: float = 0.0005  # less budget left than this: answer with the fallback

    @classmethod
    def from_config(cls, config: dict) -> RankingConfig:
        values = {}
        for f in fields(cls):
            if f.name not in config:
                continue
            value = config[f.name]
            if f.name == "popularity_by_stage":
                if not isinstance(value, dict) or set(value) - set(LIFECYCLE):
                    raise BundleError(f"config.json ranking.popularity_by_stage: keys must be {LIFECYCLE}")
                value = {**_stage_popularity(), **{k: float(v) for k, v in value.items()}}
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BundleError(f"config.json ranking.{f.name}: expected a number, got {value!r}")
            else:
                value = int(value) if f.name.endswith("candidates") else float(value)
            values[f.name] = value
        return cls(**values)

    def caps(self, page_size: int) -> tuple[int, int]:
        """(max per brand, max per category) on a page of ``page_size``; 0 = no cap."""

        def cap(share: float) -> int:
            return 0 if share >= 1.0 else max(1, math.ceil(share * page_size))

        return cap(self.max_brand_share), cap(self.max_category_share)

    def new_slots(self, page_size: int) -> int:
        return math.floor(self.new_share * page_size)
