"""The request path: resolve → eligibility → retrieve → rank → respond, under a deadline.

``Recommender(bundle, state)`` is built once per bundle (per worker) and answers one request per
call. Work over items happens in Rust (eligibility, ranking) and FAISS/numpy (retrieval); Python
only touches the request and the page.
"""

from __future__ import annotations

import math
import time

import numpy as np

from peakrec import _core
from peakrec.errors import BundleError, InvalidInputError, NotFoundError
from peakrec.pipeline.config import LIFECYCLE, RankingConfig
from peakrec.pipeline.eligibility import RuleCompiler
from peakrec.pipeline.resolve import Resolved, ShopperResolver
from peakrec.pipeline.search import MODES, SearchConfig, TextRecall
from peakrec.pipeline.types import (
    Page,
    Recommendation,
    SearchRequest,
    Shopper,
    SimilarItemsRequest,
    StorefrontRequest,
)
from peakrec.retrieval.search import (
    RetrievalConfig,
    ann_accepts,
    exact_search,
    first_ann_plan,
    graph_for,
    retrieve,
)
from peakrec.retrieval.search import search as search_index
from peakrec.retrieval.text import check_query
from peakrec.state import ItemState

MAX_PAGE_SIZE = 1000
_NO_ROWS = np.empty(0, np.int64)
_NO_SCORES = np.empty(0, np.float32)
_I64, _F32 = np.dtype(np.int64), np.dtype(np.float32)
_SOURCE_FILL_LEN = 4096  # candidates per source covered by the prebuilt source arrays
_CACHE_LIMIT = 4096  # entries in a per-bundle cache keyed by request values
DAY = 86_400

# Source bits (the low 8 reason bits): which retrieval source found an item.
SOURCE_ANN, SOURCE_BITMAP, SOURCE_EXACT, SOURCE_NEW, SOURCE_POPULAR, SOURCE_FALLBACK = 1, 2, 4, 8, 16, 32
SOURCE_BM25, SOURCE_VECTOR = 64, 128  # search: the text index, the query's hashed-token vector
_STRATEGY_SOURCE = {"ann": SOURCE_ANN, "bitmap": SOURCE_BITMAP, "exact": SOURCE_EXACT}
_REASON_NAMES = [
    (SOURCE_ANN, "ann"),
    (SOURCE_BITMAP, "filtered-ann"),
    (SOURCE_EXACT, "exact"),
    (SOURCE_NEW, "new-items"),
    (SOURCE_POPULAR, "region-popular"),
    (SOURCE_FALLBACK, "fallback"),
    (SOURCE_BM25, "bm25"),
    (SOURCE_VECTOR, "vector"),
    (_core.REASON_NEW, "new"),
    (_core.REASON_CAMPAIGN, "campaign"),
    (_core.REASON_MEMBER, "member"),
    (_core.REASON_CONSIDERED, "considered-category"),
    (_core.REASON_POPULAR, "popularity"),
    (_core.REASON_RESERVED, "reserved-new-slot"),
    (_core.REASON_CAP_RELAXED, "cap-relaxed"),
]


def explain(bits: int) -> str:
    """Reason bits as text: ``"found by ann; boosts: campaign, new"``."""
    found = [name for bit, name in _REASON_NAMES[:8] if bits & bit]
    boosts = [name for bit, name in _REASON_NAMES[8:] if bits & bit]
    text = "found by " + "+".join(found or ["?"])
    return text + ("; " + ", ".join(boosts) if boosts else "")


class Recommender:
    """Storefront and similar-item pages over one bundle.

    ``state`` holds live stock, price and availability (row-aligned with the bundle); it is read on
    every request, so whoever owns it may update its arrays in place. Default: the bundle's values.
    """

    def __init__(self, bundle, state: ItemState | None = None):
        items = bundle.items
        self.bundle = bundle
        self.version = bundle.version
        self.state = state if state is not None else ItemState.from_arrays(items.stock, items.price)
        config = bundle.config or {}
        self.config = RankingConfig.from_config(config.get("ranking", {}), config.get("retrieval", {}))
        search_params = bundle.manifest.get("index", {}).get("search_params", {})
        self.retrieval = RetrievalConfig.from_config(config.get("retrieval", {}), search_params)
        self.index = bundle.index
        # Built here, not on the first request; on the bundle's shared half-precision vectors.
        self.graph = graph_for(self.index, True if bundle.index_half is None else bundle.index_half)
        self.vectors = np.asarray(items.vectors)  # plain views: memmap indexing is slow
        self.n = int(len(items.brand))
        self.ids = np.asarray(items.ids)
        pop = np.log1p(np.maximum(np.asarray(items.popularity, dtype=np.float32), 0))
        self.popularity = (pop / max(float(pop.max(initial=0)), 1e-12)).astype(np.float32)
        self.catalog = _core.Catalog(
            _i32(items.brand),
            _i32(items.category),
            np.ascontiguousarray(items.regions, dtype=np.uint64),
            _i64(items.launch_ts),
            _i64(items.presale_start),
            _i64(items.presale_end),
            np.ascontiguousarray(items.member_only, dtype=np.uint8),
            np.ascontiguousarray(items.campaigns, dtype=np.uint64),
            self.popularity,
        )
        self.brand_of = np.asarray(items.brand)
        self.category_of = np.asarray(items.category)
        self.launch_order = np.argsort(items.launch_ts, kind="stable")
        self.launch_sorted = np.asarray(items.launch_ts)[self.launch_order]
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
        default_boost = self.config.campaign_boost
        self.campaign_boosts = np.array(
            [float(c.get("boost") or default_boost) for c in campaigns], dtype=np.float32
        )
        self.region_popular = np.asarray(bundle.region_popular)
        self.resolver = ShopperResolver(bundle, self.config)
        self.rules = RuleCompiler(bundle)
        self.n_categories = len(bundle.vocab["categories"])
        self.search_config = SearchConfig.from_config(config.get("search", {}))
        # Per-request values that depend only on the bundle, computed once here.
        self._new_window = int(self.config.new_item_window_days * DAY)
        self._stage_cache = {name: self.config.stage(name) for name in LIFECYCLE}
        self._rank_base: dict[tuple[str, bool], dict] = {}
        self._has_campaigns = len(self.campaign_segments) > 0
        self._campaign_cache: dict[int, np.ndarray] = {}
        self._ann_plans: dict[int, tuple] = {}  # depth -> the first ANN search's depth and params
        self._region_share = _region_share(items.regions, items.stock, len(bundle.vocab.get("regions", [])))
        self._source_fill = {}
        for source in (SOURCE_ANN, SOURCE_BITMAP, SOURCE_EXACT, SOURCE_NEW, SOURCE_POPULAR):
            fill = np.full(_SOURCE_FILL_LEN, source, np.uint8)
            fill.flags.writeable = False
            self._source_fill[source] = fill
        self.text = None
        if getattr(bundle, "text_index", None) is not None:
            self.text = TextRecall(bundle, self.vectors, self.catalog, self.retrieval, self.search_config)

    # -- public API -------------------------------------------------------------------------

    def storefront(self, request: StorefrontRequest) -> Recommendation:
        """One storefront page for ``request.shopper``."""
        return self._run(request.shopper, request.filters, request.page, None)

    def similar_items(self, request: SimilarItemsRequest) -> Recommendation:
        """Items near ``request.item_id``'s vector under the shopper's eligibility rules."""
        row = int(self.bundle.item_rows([request.item_id])[0]) if request.item_id else -1
        if row < 0:
            raise NotFoundError(f"item_id: unknown item {request.item_id!r}")
        return self._run(request.shopper, request.filters, request.page, similar_to=row)

    def search(self, request: SearchRequest, *, mode: str = "personalised") -> Recommendation:
        """Search results for ``request.query`` (see docs/search.md): BM25 and vector recall under
        the shopper's eligibility, fused (RRF), blended with the shopper's vector, ranked and paged
        as Storefront. ``mode`` (evaluation): one of ``MODES``; the service uses the default."""
        t0 = time.monotonic()
        query = check_query(request.query)
        page, shopper = request.page, request.shopper
        _check_page(page)
        if mode not in MODES:
            raise InvalidInputError(f"mode: expected one of {MODES}, got {mode!r}")
        if self.text is None:
            raise BundleError(f"bundle {self.version}: built without a text index; search unavailable")
        stages: dict[str, float] = {}
        now = int(page.now if page.now is not None else time.time())
        resolved = self.resolver.resolve(shopper, shopper.vector)
        excluded, unknown = self._excluded(shopper, resolved, None)
        rules = self.rules.compile(
            request.filters, self.state, resolved.region, now, resolved.member_brands, excluded
        )
        t1 = time.monotonic()
        stages["resolve"] = t1 - t0
        page_end = (page.page + 1) * page.page_size
        budget_short = page.deadline is not None and page.deadline - t1 < self.config.min_retrieval_seconds
        got = None if budget_short else self.text.recall(query, rules, page_end, mode, page.deadline)
        t2 = time.monotonic()
        stages["retrieve"] = t2 - t1
        if got is None or (len(got.rows) == 0 and not got.known_tokens):
            # Nothing known in the query (or no time): the region-popular list, flagged degraded.
            rec = self._fallback(rules, resolved, page, now, degraded=True)
            rec.unknown_excluded = unknown
            stages["rank"] = time.monotonic() - t2
            rec.stage_seconds = stages
            return rec

        relevance = got.text
        if mode == "personalised" and resolved.query is not None:
            w = self.search_config.text_weight
            personal = self.vectors[got.rows] @ resolved.query[0]
            relevance = (w * got.text + (1 - w) * personal).astype(np.float32)
        sources = np.where(got.in_bm25, SOURCE_BM25, 0) | np.where(got.in_vector, SOURCE_VECTOR, 0)
        out = self.catalog.rank(
            rules,
            got.rows,
            relevance,
            sources.astype(np.uint8),
            page=page.page,
            page_size=page.page_size,
            now=now,
            max_per_brand=self.search_config.max_per_brand,
            max_per_category=self.search_config.max_per_category,
        )
        stages["rank"] = time.monotonic() - t2
        rec = self._respond(out, page, cold=resolved.cold, degraded=got.partial or not got.known_tokens)
        rec.eligible_count = out[3] if got.eligible_count is None else got.eligible_count
        rec.unknown_excluded = unknown
        rec.stage_seconds = stages
        return rec

    # -- stages -----------------------------------------------------------------------------

    def _run(self, shopper: Shopper, filters, page: Page, similar_to: int | None) -> Recommendation:
        t0 = time.monotonic()
        _check_page(page)
        cfg = self.config
        now = int(page.now if page.now is not None else time.time())
        storefront = similar_to is None
        resolved = self.resolver.resolve(shopper, shopper.vector if storefront else None)
        if not storefront:
            resolved.query = np.ascontiguousarray(self.vectors[similar_to], dtype=np.float32).reshape(1, -1)
            resolved.cold = False
        if storefront and not len(resolved.purchased_rows) and not shopper.exclude_items:
            excluded, unknown = _NO_ROWS, 0  # (what _excluded returns here, without the call)
        else:
            excluded, unknown = self._excluded(shopper, resolved, similar_to)
        members = self.rules.member_mask(resolved.member_brands) if len(resolved.member_brands) else None
        rules = self.rules.compile(
            filters, self.state, resolved.region, now, resolved.member_brands, excluded, members
        )
        t1 = time.monotonic()
        stages = {"resolve": t1 - t0}

        page_size = page.page_size
        page_end = (page.page + 1) * page_size
        budget_short = page.deadline is not None and page.deadline - t1 < cfg.min_retrieval_seconds
        if resolved.query is None or budget_short:
            rec = self._fallback(rules, resolved, page, now, degraded=budget_short)
            rec.unknown_excluded = unknown
            stages["rank"] = time.monotonic() - t1
            rec.stage_seconds = stages
            return rec

        need = math.ceil(page_end * cfg.candidates_factor)
        query = resolved.query
        if storefront:
            new_slots = cfg.new_slots(page_size)
            popularity = self._stage_weights(resolved.lifecycle)["popularity"]
            with_new = bool(new_slots or cfg.new_item_boost)
            with_popular = popularity > 0 and cfg.popular_candidates > 0
        else:
            new_slots, popularity, with_new, with_popular = 0, 0.0, False, False
        kwargs = self._rank_kwargs(resolved, page, now, new_slots, popularity, storefront, members)

        first = None
        # Search deep enough that the region's in-stock share of the nearest items fills the page
        # at once: a second, deeper search costs far more than a slightly deeper first one.
        region = resolved.region
        share = float(self._region_share[region]) if 0 <= region < len(self._region_share) else 1.0
        if not (with_new or with_popular or self.graph is not None):
            # ANN is the only source: rank its first search's results under the rules, so the
            # ranking kernel's eligibility check is the only one; when that search fills the page
            # (the usual case) this is retrieve's `ann` result ranked, with one Rust call fewer.
            n = self.n
            need_n = max(1, min(need, n))
            need_first = min(n, math.ceil(need_n / share))
            plan = self._ann_plans.get(need_first)
            if plan is None:
                if len(self._ann_plans) >= _CACHE_LIMIT:
                    self._ann_plans.clear()
                plan = self._ann_plans[need_first] = first_ann_plan(self.index, need_first, n, self.retrieval)
            depth = plan[0]
            rows, rel = search_index(self.index, query, depth, plan[1])
            t2 = time.monotonic()
            out = self.catalog.rank(rules, rows, rel, self._sources(SOURCE_ANN, len(rows)), **kwargs)
            t3 = time.monotonic()
            found, got_n = out[3], len(rows)
            partial = page.deadline is not None and t3 > page.deadline
            if ann_accepts(found, got_n, depth, need_n, n, partial):
                stages["retrieve"] = t2 - t1
                stages["rank"] = t3 - t2
                estimate = round(found / max(got_n, 1) * n)
                return self._respond(out, page, resolved.cold, partial, estimate, unknown, stages)
            first = (rows, rel)  # not enough eligible near the query: retrieve goes on from here

        got = retrieve(
            self.index,
            self.vectors,
            self.catalog,
            rules,
            query,
            need,
            self.retrieval,
            page.deadline,
            first=first,
            share=share,
        )
        rows, rel = got.rows, got.relevance
        src = self._sources(_STRATEGY_SOURCE[got.strategy], len(rows))
        if with_new or with_popular:
            more_rows, more_rel, more_src = [rows], [rel], [src]
            if with_new:
                new_rows, new_rel = self._new_items(rules, query, now, self._new_window, page_end)
                more_rows.append(new_rows)
                more_rel.append(new_rel)
                more_src.append(self._sources(SOURCE_NEW, len(new_rows)))
            if with_popular:
                pop_rows = self._popular_rows(resolved.region)[: cfg.popular_candidates]
                pop_rows = pop_rows[self.catalog.check_rows(rules, pop_rows).view(bool)]
                more_rows.append(pop_rows)
                more_rel.append(self.vectors[pop_rows] @ query[0] if len(pop_rows) else _NO_SCORES)
                more_src.append(self._sources(SOURCE_POPULAR, len(pop_rows)))
            rows, rel, src = np.concatenate(more_rows), np.concatenate(more_rel), np.concatenate(more_src)
        t2 = time.monotonic()
        stages["retrieve"] = t2 - t1

        if rows.dtype != _I64:
            rows = rows.astype(np.int64)
        if rel.dtype != _F32:
            rel = rel.astype(np.float32)
        # Every source above passed the eligibility check already: no second check here.
        out = self.catalog.rank(None, rows, rel, src, **kwargs)
        stages["rank"] = time.monotonic() - t2
        return self._respond(out, page, resolved.cold, got.partial, got.eligible_count, unknown, stages)

    def _sources(self, source: int, n: int) -> np.ndarray:
        """``uint8[n]`` filled with ``source``: a view of a read-only array made at load."""
        if n <= _SOURCE_FILL_LEN:
            return self._source_fill[source][:n]
        return np.full(n, source, np.uint8)

    def _stage_weights(self, lifecycle: str) -> dict[str, float]:
        weights = self._stage_cache.get(lifecycle)
        if weights is None:
            weights = self.config.stage(lifecycle)
        return weights

    def _excluded(
        self, shopper: Shopper, resolved: Resolved, similar_to: int | None
    ) -> tuple[np.ndarray, int]:
        purchased = resolved.purchased_rows
        if not len(purchased) and not shopper.exclude_items and similar_to is None:
            return _NO_ROWS, 0
        unknown = 0
        excluded = purchased.tolist()
        if shopper.exclude_items:
            rows = self.bundle.item_rows(list(shopper.exclude_items))
            known = rows >= 0
            unknown = len(rows) - int(np.count_nonzero(known))
            excluded += rows[known].tolist()
        if similar_to is not None:
            excluded.append(similar_to)
        # sorted(set()) is np.unique's result, without its array set-up costs on a few rows
        return np.array(sorted(set(excluded)), np.int64), unknown

    def _new_items(self, rules, query, now: int, window: int, page_end: int):
        """The most recently launched items (within the new-item window) that are eligible."""
        lo = np.searchsorted(self.launch_sorted, now - window, side="left")
        hi = np.searchsorted(self.launch_sorted, now, side="right")
        rows = self.launch_order[max(lo, hi - self.config.new_candidates) : hi].astype(np.int64)
        if len(rows) == 0:
            return rows, np.empty(0, np.float32)
        rows = rows[self.catalog.check_rows(rules, rows).view(bool)]
        # A fixed count (not one that grows with the page) keeps every page's pool the same.
        return exact_search(self.vectors, rows, query, self.config.new_candidates_top)

    def _popular_rows(self, region: int) -> np.ndarray:
        rows = np.asarray(self.region_popular[region], dtype=np.int64)
        return rows[rows >= 0]

    def _rank_kwargs(
        self, resolved, page: Page, now, new_slots, popularity, storefront: bool, members=None
    ) -> dict:
        cfg = self.config
        lifecycle = resolved.lifecycle
        base = self._rank_base.get((lifecycle, storefront))
        if base is None:
            base = self._rank_base[(lifecycle, storefront)] = self._make_rank_base(lifecycle, storefront)
        page_size = page.page_size
        kwargs = {
            **base,
            "page": page.page,
            "page_size": page_size,
            "now": now,
            "pool_per_page": page_size * cfg.candidates_factor,
            "popularity_weight": popularity,
        }
        if not storefront:
            return kwargs
        kwargs["new_slots"] = new_slots
        if self._has_campaigns:
            kwargs["campaign_boost"] = self._campaign_boost(resolved.segments)
        if len(resolved.member_brands):
            boost = cfg.loyalty_member_boost if lifecycle == "loyalty" else cfg.member_boost
            if boost:  # (a zero boost leaves scores and reasons alone: the mask is not read)
                if members is None:
                    members = self.rules.member_mask(resolved.member_brands)
                kwargs["member_brands"] = members
                kwargs["member_boost"] = boost
        if lifecycle == "purchase" and len(resolved.recent_rows):
            considered = np.zeros(self.n_categories, np.uint8)
            considered[self.category_of[resolved.recent_rows]] = 1
            kwargs["considered_categories"] = considered
            kwargs["considered_boost"] = cfg.considered_boost
        return kwargs

    def _make_rank_base(self, lifecycle: str, storefront: bool) -> dict:
        """The rank arguments that depend only on the bundle and the lifecycle stage."""
        cfg = self.config
        stage = cfg.stage(lifecycle)
        base = dict(
            limited_sources=SOURCE_ANN | SOURCE_BITMAP | SOURCE_EXACT,
            relevance_weight=stage["relevance"] if storefront else 1.0,
            max_per_brand=cfg.max_per_brand,
            max_per_category=cfg.max_per_category,
        )
        if storefront:
            base.update(new_boost=cfg.new_item_boost + stage["novelty"], new_window=self._new_window)
        return base

    def _campaign_boost(self, segments: int) -> np.ndarray:
        """float32[campaigns]: each campaign's boost if aimed at one of ``segments``, else 0."""
        boost = self._campaign_cache.get(segments)
        if boost is None:
            active = ((self.campaign_segments & np.uint64(segments)) != 0) | self.campaign_everyone
            boost = np.where(active, self.campaign_boosts, 0).astype(np.float32)
            boost.flags.writeable = False
            if len(self._campaign_cache) >= _CACHE_LIMIT:
                self._campaign_cache.clear()
            self._campaign_cache[segments] = boost
        return boost

    def _fallback(self, rules, resolved: Resolved, page: Page, now: int, degraded: bool) -> Recommendation:
        """The region-popular list (eligible items only), in popularity order."""
        rows = self._popular_rows(resolved.region)
        out = self.catalog.rank(
            rules,
            rows,
            self.popularity[rows],
            np.full(len(rows), SOURCE_FALLBACK, np.uint8),
            page=page.page,
            page_size=page.page_size,
            now=now,
            max_per_brand=self.config.max_per_brand,
            max_per_category=self.config.max_per_category,
        )
        rec = self._respond(out, page, cold=True, degraded=degraded)
        rec.eligible_count = out[3]
        return rec

    def _respond(
        self, out, page: Page, cold: bool, degraded: bool, eligible_count=0, unknown=0, stages=None
    ) -> Recommendation:
        rows, scores, reasons, _pool = out
        return Recommendation(
            self.ids[rows].tolist(),
            rows,
            scores,
            self.version,
            degraded,
            cold,
            [explain(int(b)) for b in reasons] if page.explain else None,
            eligible_count,
            unknown,
            {} if stages is None else stages,
        )


def _check_page(page: Page) -> None:
    size = page.page_size
    # The usual request, in plain ints: three comparisons instead of the checks below.
    if type(size) is int and 1 <= size <= MAX_PAGE_SIZE and type(page.page) is int and page.page >= 0:
        if page.now is None or math.isfinite(page.now):
            return
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"page.page_size: must be between 1 and {MAX_PAGE_SIZE}, got {size!r}")
    if isinstance(page.page, bool) or not isinstance(page.page, (int, np.integer)) or page.page < 0:
        raise InvalidInputError(f"page.page: must be a non-negative integer, got {page.page!r}")
    if page.now is not None and not math.isfinite(page.now):
        raise InvalidInputError(f"page.now: must be finite, got {page.now!r}")


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _region_share(regions, stock, n_regions: int) -> np.ndarray:
    """float[n_regions]: the share of items sellable in each region and in stock at build time,
    rounded up to a twentieth (so first-search depths stay few) and at least 0.2 (below that the
    bitset strategies take over anyway). Fixed per bundle, so a request's depth never depends on
    the requests before it."""
    in_stock = np.asarray(regions, dtype=np.uint64)[np.asarray(stock) > 0]
    columns = [np.ascontiguousarray(in_stock[:, w]) for w in range(in_stock.shape[1])]
    counts = [np.count_nonzero(columns[r // 64] & np.uint64(1 << (r % 64))) for r in range(n_regions)]
    share = np.array(counts, dtype=np.float64) / max(len(stock), 1)
    return np.clip(np.ceil(share * 20) / 20, 0.2, 1.0)
