"""Stage 4: rank the candidates into a page (``_core.Catalog.rank``, Rust).

The weights and caps of each kind of page are ``_core.RankParams`` built once per bundle: one per
lifecycle stage for Storefront and Search, one for SimilarItems, one for the fallback. Per request
only the page shape, the time, the shopper's campaign boosts (by audience segment and by the
campaigns running at that time), member brands and considered categories are passed.
"""

from __future__ import annotations

import bisect

import numpy as np

from peakrec import _core
from peakrec.config import LIFECYCLE, RankingConfig, SearchConfig
from peakrec.pipeline.eligibility import RuleCompiler
from peakrec.pipeline.request import SEARCH, SIMILAR_ITEMS, STOREFRONT, Request
from peakrec.pipeline.sources import LIMITED_SOURCES, SOURCE_FALLBACK

_CACHE_LIMIT = 4096  # entries in a per-bundle cache keyed by request values
_I64, _F32 = np.dtype(np.int64), np.dtype(np.float32)
_NO_TIME_BOUND = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)

RankOutput = tuple[np.ndarray, np.ndarray, np.ndarray, int]  # rows, scores, reasons, pool


def rank_params(ranking: RankingConfig, search: SearchConfig) -> dict[tuple[str, str], _core.RankParams]:
    """``{(kind, lifecycle stage): RankParams}`` for every page kind; kind "fallback" and
    "search-text" (search ranked by text relevance alone, for evaluation) under stage ""."""
    r = ranking
    window = r.new_window_seconds
    out = {}
    for stage in LIFECYCLE:
        mix = r.stage(stage)
        member = r.loyalty_member_boost if stage == "loyalty" else r.member_boost
        out[STOREFRONT, stage] = _core.RankParams(
            relevance_weight=mix.relevance,
            popularity_weight=mix.popularity,
            new_boost=r.new_item_boost + mix.novelty,
            new_window=window,
            new_reserved_share=r.new_item_reserved_share,
            new_max_share=r.new_item_max_share,
            presale_boost=r.presale_boost,
            member_boost=member,
            considered_boost=r.considered_boost if stage == "purchase" else 0.0,
            max_per_brand=r.max_per_brand,
            max_per_category=r.max_per_category,
            pool_factor=r.candidates_factor,
            limited_sources=LIMITED_SOURCES,
        )
        # Search: the query decides relevance; the shop's terms apply as on the storefront, scaled
        # to the text relevance by terms_weight.
        w = search.terms_weight
        out[SEARCH, stage] = _core.RankParams(
            new_boost=r.new_item_boost * w,
            new_window=window,
            new_max_share=r.new_item_max_share,
            presale_boost=r.presale_boost * w,
            member_boost=member * w,
            max_per_brand=search.max_per_brand,
            max_per_category=search.max_per_category,
        )
    out[SIMILAR_ITEMS, ""] = _core.RankParams(
        max_per_brand=r.max_per_brand,
        max_per_category=r.max_per_category,
        pool_factor=r.similar_candidates_factor,
        limited_sources=LIMITED_SOURCES,
    )
    out["search-text", ""] = _core.RankParams(
        max_per_brand=search.max_per_brand, max_per_category=search.max_per_category
    )
    out["fallback", ""] = _core.RankParams(max_per_brand=r.max_per_brand, max_per_category=r.max_per_category)
    return out


class Ranker:
    """Ranks one request's candidates; built once per bundle."""

    def __init__(self, bundle, catalog, rules: RuleCompiler, ranking: RankingConfig, search: SearchConfig):
        self.catalog = catalog
        self.rules = rules
        self.params = rank_params(ranking, search)
        self.search_terms_weight = search.terms_weight
        self.category_of = np.asarray(bundle.items.category)
        self.n_categories = len(bundle.vocab["categories"])
        campaigns = bundle.vocab.get("campaigns", [])
        segment_index = {s: i for i, s in enumerate(bundle.vocab.get("segments", []))}
        self.campaign_segments = np.array(
            [
                sum(1 << segment_index[s] for s in c.get("segments") or [] if s in segment_index)
                for c in campaigns
            ],
            dtype=np.uint64,
        )
        # A campaign without segments is aimed at every shopper.
        self.campaign_everyone = np.array([not c.get("segments") for c in campaigns], dtype=bool)
        self.campaign_boosts = np.array(
            [float(ranking.campaign_boost if c.get("boost") is None else c["boost"]) for c in campaigns],
            dtype=np.float32,
        )
        lo, hi = _NO_TIME_BOUND
        self.campaign_start = np.array(
            [lo if c.get("start") is None else c["start"] for c in campaigns], np.int64
        )
        self.campaign_end = np.array([hi if c.get("end") is None else c["end"] for c in campaigns], np.int64)
        # The instants a campaign starts or ends: between two of them the running set is fixed.
        self._campaign_times = sorted(
            {int(t) for t in (*self.campaign_start, *self.campaign_end) if t not in _NO_TIME_BOUND}
        )
        self._campaign_cache: dict[tuple[int, int, float], np.ndarray] = {}

    def stage(self, req: Request) -> RankOutput:
        resolved = req.resolved
        kind = req.kind
        if kind == SIMILAR_ITEMS:
            params = self.params[SIMILAR_ITEMS, ""]
        elif kind == SEARCH and req.mode != "personalised":
            params = self.params["search-text", ""]
        else:
            params = self.params.get((kind, resolved.lifecycle)) or self.params[kind, "awareness"]
        candidates = req.candidates
        if len(candidates) == 1:
            c = candidates[0]
            rows, relevance, sources, checked = c.rows, c.relevance, c.sources, c.checked
        else:
            rows = np.concatenate([c.rows for c in candidates])
            relevance = np.concatenate([c.relevance for c in candidates])
            sources = np.concatenate([c.sources for c in candidates])
            checked = all(c.checked for c in candidates)
        if rows.dtype != _I64:
            rows = rows.astype(np.int64)
        if relevance.dtype != _F32:
            relevance = relevance.astype(np.float32)
        campaign_boost = members = considered = None
        if kind != SIMILAR_ITEMS and params is not self.params["search-text", ""]:
            if len(self.campaign_boosts):
                scale = self.search_terms_weight if kind == SEARCH else 1.0
                campaign_boost = self.campaign_boost(resolved.segments, req.now, scale)
            if len(resolved.member_brands) and params.member_boost:
                members = self.rules.member_mask(resolved.member_brands)
            if params.considered_boost and len(resolved.recent_rows):
                considered = np.zeros(self.n_categories, np.uint8)
                considered[self.category_of[resolved.recent_rows]] = 1
        page = req.page
        return self.catalog.rank(
            None if checked else req.rules,  # the rules are checked once per candidate
            rows,
            relevance,
            sources,
            params,
            page=page.page,
            page_size=page.page_size,
            now=req.now,
            campaign_boost=campaign_boost,
            member_brands=members,
            considered_categories=considered,
        )

    def fallback(self, req: Request, rows: np.ndarray, popularity: np.ndarray) -> RankOutput:
        """The region-popular ``rows`` under the request's rules, in popularity order."""
        page = req.page
        return self.catalog.rank(
            req.rules,
            rows,
            popularity[rows],
            np.full(len(rows), SOURCE_FALLBACK, np.uint8),
            self.params["fallback", ""],
            page=page.page,
            page_size=page.page_size,
            now=req.now,
        )

    def campaign_boost(self, segments: int, now: int, scale: float = 1.0) -> np.ndarray:
        """float32[campaigns]: each campaign's boost (times ``scale``) if it runs at ``now``
        (start <= now < end) and is aimed at one of ``segments``, else 0. Cached by segments,
        time interval and scale."""
        interval = bisect.bisect_right(self._campaign_times, now)
        key = (segments, interval, scale)
        boost = self._campaign_cache.get(key)
        if boost is None:
            aimed = ((self.campaign_segments & np.uint64(segments)) != 0) | self.campaign_everyone
            running = (self.campaign_start <= now) & (now < self.campaign_end)
            boost = np.where(aimed & running, self.campaign_boosts * scale, 0).astype(np.float32)
            boost.flags.writeable = False
            if len(self._campaign_cache) >= _CACHE_LIMIT:
                self._campaign_cache.clear()
            self._campaign_cache[key] = boost
        return boost
