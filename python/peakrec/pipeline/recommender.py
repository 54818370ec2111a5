"""The request path over one bundle: resolve → eligibility → candidate sources → rank → respond,
under one deadline budget per stage (``pipeline.request.Budget``).

``Recommender(bundle, state)`` is built once per bundle (per worker) and answers one request per
call. Each stage is a module with one job; this one only composes them. Work over items happens
in Rust (eligibility, ranking) and FAISS/numpy (retrieval); Python only touches the request and
the page.
"""

from __future__ import annotations

import time

import numpy as np

from peakrec import _core
from peakrec.config import ServingConfig
from peakrec.errors import BundleError, InvalidInputError, NotFoundError
from peakrec.pipeline.eligibility import RuleCompiler
from peakrec.pipeline.rank import Ranker
from peakrec.pipeline.request import SEARCH, SIMILAR_ITEMS, STOREFRONT, Budget, Request
from peakrec.pipeline.resolve import ShopperResolver
from peakrec.pipeline.respond import explain, respond
from peakrec.pipeline.search import MODES, TextRecall
from peakrec.pipeline.sources import Sources
from peakrec.pipeline.types import (
    Filters,
    Page,
    Recommendation,
    SearchRequest,
    Shopper,
    SimilarItemsRequest,
    StorefrontRequest,
)
from peakrec.pipeline.validate import check_page, check_query
from peakrec.retrieval.hnsw import half_vectors
from peakrec.retrieval.search import graph_for
from peakrec.state import ItemState

__all__ = ["Recommender", "explain"]


class Recommender:
    """Storefront, search and similar-item pages over one bundle.

    ``state`` holds live stock, price and availability (row-aligned with the bundle); it is read on
    every request. Whoever owns it changes it through ``ItemState.update`` (or ``SharedItemState``),
    which keeps its eligible-row sets current; an array written in place directly must be followed by
    ``state.kept.touch(rows)`` once the sets exist (the first request builds them). Default: the
    bundle's values.
    """

    def __init__(self, bundle, state: ItemState | None = None):
        items = bundle.items
        self.bundle = bundle
        self.version = bundle.version
        self.state = state if state is not None else ItemState.from_arrays(items.stock, items.price)
        try:
            settings = ServingConfig.from_dict(bundle.config, f"bundle {bundle.version} config.json")
        except InvalidInputError as err:
            raise BundleError(str(err)) from None
        self.settings = settings
        self.config = settings.ranking
        search_params = bundle.manifest.get("index", {}).get("search_params", {})
        plan = bundle.manifest.get("lists", {}).get("plan")
        self.retrieval = settings.retrieval.with_search_params(search_params, plan)
        self.index = bundle.index
        # Built here, not on the first request; on the bundle's shared half-precision vectors,
        # which the kept scan and the lists' probe read too.
        half = bundle.index_half if bundle.index_half is not None else half_vectors(self.index)
        self.graph = graph_for(self.index, False if half is None else half)
        self.vectors = np.asarray(items.vectors)  # plain views: memmap indexing is slow
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
        self.resolver = ShopperResolver(bundle, self.config)
        self.rules = RuleCompiler(bundle)
        text = None
        if getattr(bundle, "text_index", None) is not None:
            text = TextRecall(bundle, self.vectors, self.catalog, self.retrieval, settings.search)
        self.sources = Sources(
            bundle,
            self.catalog,
            self.vectors,
            self.config,
            self.retrieval,
            settings.pipeline,
            text,
            self.state,
            half,
        )
        self.ranker = Ranker(bundle, self.catalog, self.rules, self.config, settings.search)
        pipeline = settings.pipeline
        self._shares = (pipeline.resolve_share, pipeline.sources_share, pipeline.rank_share)
        self._min_source_seconds = pipeline.min_source_seconds

    # -- public API -------------------------------------------------------------------------

    def storefront(self, request: StorefrontRequest) -> Recommendation:
        """One storefront page for ``request.shopper``."""
        return self._serve(self._request(STOREFRONT, request.shopper, request.filters, request.page))

    def similar_items(self, request: SimilarItemsRequest) -> Recommendation:
        """Items near ``request.item_id``'s vector under the shopper's eligibility rules."""
        req = self._request(SIMILAR_ITEMS, request.shopper, request.filters, request.page)
        row = int(self.bundle.item_rows([request.item_id])[0]) if request.item_id else -1
        if row < 0:
            raise NotFoundError(f"item_id: unknown item {request.item_id!r}")
        req.item_row = row
        return self._serve(req)

    def search(self, request: SearchRequest, *, mode: str = "personalised") -> Recommendation:
        """Search results for ``request.query`` (see docs/search.md): BM25 and vector recall under
        the shopper's eligibility, fused (RRF), blended with the shopper's vector, then ranked and
        paged with the storefront's business terms. ``mode`` (evaluation): one of ``MODES``; the
        modes other than the service's ``personalised`` rank by text relevance alone."""
        query = check_query(request.query)
        if mode not in MODES:
            raise InvalidInputError(f"mode: expected one of {MODES}, got {mode!r}")
        if self.sources.text is None:
            raise BundleError(f"bundle {self.version}: built without a text index; search unavailable")
        req = self._request(SEARCH, request.shopper, request.filters, request.page)
        req.query, req.mode = query, mode
        return self._serve(req)

    def fallback(self, request: StorefrontRequest) -> Recommendation:
        """The region-popular page under the request's rules (what a request that cannot be
        personalised gets; evaluation's baseline)."""
        req = self._request(STOREFRONT, request.shopper, request.filters, request.page)
        self._resolve(req)
        return self._fallback(req, req.started)

    # -- the stages ---------------------------------------------------------------------------

    def _request(self, kind: str, shopper: Shopper, filters: Filters, page: Page) -> Request:
        started = time.monotonic()
        check_page(page)
        now = int(page.now if page.now is not None else time.time())
        req = Request(kind, shopper, filters, page, now, Budget(started, page.deadline, self._shares))
        req.started = started
        return req

    def _resolve(self, req: Request) -> float:
        """Stages 1 and 2: who the page is for, then the rules every item on it must pass."""
        shopper = req.shopper
        resolved = self.resolver.resolve(shopper, shopper.vector if req.kind != SIMILAR_ITEMS else None)
        if req.kind == SIMILAR_ITEMS:
            resolved.query = np.ascontiguousarray(self.vectors[req.item_row], dtype=np.float32).reshape(1, -1)
            resolved.cold = False
        req.resolved = resolved
        self.rules.stage(req, self.state)
        return req.lap("resolve", req.started)

    def _serve(self, req: Request) -> Recommendation:
        t = self._resolve(req)
        if req.budget.sources_left(t) < self._min_source_seconds:
            req.degraded = True  # no time to search: the fallback, flagged
            return self._fallback(req, t)
        self.sources.stage(req, req.budget.sources_end)
        t = req.lap("sources", t)
        if not req.candidates:
            return self._fallback(req, t)
        out = self.ranker.stage(req)
        req.lap("rank", t)
        eligible = None  # the first source that knows it (the ann source's count or estimate)
        for c in req.candidates:
            if eligible is None:
                eligible = c.eligible_count
            if c.partial:
                req.degraded = True
        return respond(req, out, self.ids, self.version, req.resolved.cold, eligible)

    def _fallback(self, req: Request, since: float) -> Recommendation:
        """The region-popular list (eligible items only), in popularity order."""
        rows = self.sources.popular_rows(req.resolved.region)
        out = self.ranker.fallback(req, rows, self.popularity)
        req.lap("rank", since)
        return respond(req, out, self.ids, self.version, True, None)


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)
