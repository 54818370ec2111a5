"""Stage 3: candidate sources, each ``request -> candidates`` (or None when it has nothing to add
for this request), run in the order the bundle's ``[pipeline]`` config lists them per request
kind, as Gorse's recommenders are. The region-popular fallback answers when none contributes.

* ``ann``: filter-aware vector retrieval for the shopper's (or the similar item's) vector
  (``peakrec.retrieval.search``, docs/retrieval.md); checked: every row it returns is eligible.
* ``new-items``: the most relevant of the newest eligible items (incubation), when new items get
  a boost or reserved slots; checked.
* ``region-popular``: the region's most popular items, when the lifecycle stage weighs popularity;
  unchecked (rank applies the rules).
* ``text``: search recall, BM25 and the query's hashed-token vector fused (docs/search.md); checked.
"""

from __future__ import annotations

import math

import numpy as np

from peakrec.config import PipelineConfig, RankingConfig, RetrievalConfig
from peakrec.pipeline.request import SEARCH, SIMILAR_ITEMS, STOREFRONT, Candidates, Request
from peakrec.retrieval.search import exact_search, retrieve
from peakrec.state import ItemState

# Source bits (the low 8 reason bits): which source found an item.
SOURCE_ANN, SOURCE_BITMAP, SOURCE_EXACT, SOURCE_NEW, SOURCE_POPULAR, SOURCE_FALLBACK = 1, 2, 4, 8, 16, 32
SOURCE_BM25, SOURCE_VECTOR = 64, 128  # search: the text index, the query's hashed-token vector
STRATEGY_SOURCE = {"ann": SOURCE_ANN, "bitmap": SOURCE_BITMAP, "lists": SOURCE_BITMAP, "exact": SOURCE_EXACT}
# Sources whose depth grows with the page (so a page is chosen among the candidates it would have
# had when requested on its own; see RankParams.pool_factor).
LIMITED_SOURCES = SOURCE_ANN | SOURCE_BITMAP | SOURCE_EXACT

_FILL_LEN = 4096  # candidates per source covered by the prebuilt source arrays
_FILLS = {}
for _bit in (SOURCE_ANN, SOURCE_BITMAP, SOURCE_EXACT, SOURCE_NEW, SOURCE_POPULAR, SOURCE_FALLBACK):
    _FILLS[_bit] = np.full(_FILL_LEN, _bit, np.uint8)
    _FILLS[_bit].flags.writeable = False
_NO_SCORES = np.empty(0, np.float32)


def source_bits(bit: int, n: int) -> np.ndarray:
    """``uint8[n]`` filled with ``bit``: a view of a read-only array made at import."""
    if n <= _FILL_LEN:
        return _FILLS[bit][:n]
    return np.full(n, bit, np.uint8)


class Sources:
    """The candidate sources over one bundle; built once per bundle."""

    def __init__(
        self,
        bundle,
        catalog,
        vectors: np.ndarray,
        ranking: RankingConfig,
        retrieval: RetrievalConfig,
        pipeline: PipelineConfig,
        text=None,
        state: ItemState | None = None,
        half: np.ndarray | None = None,
    ):
        items = bundle.items
        # The live state's kept eligible-row sets (built on the first request): the ann source
        # counts a request's rows before searching and scans few of them exactly.
        self.state = state
        self.regions = np.ascontiguousarray(items.regions, dtype=np.uint64)
        self.index = bundle.index
        self.lists = bundle.lists
        self.half = half  # the vectors in half precision, read by the kept scan and the probe
        self.catalog = catalog
        self.vectors = vectors
        self.n = len(catalog)
        self.ranking = ranking
        self.retrieval = retrieval
        self.text = text
        self.launch_order = np.argsort(items.launch_ts, kind="stable")
        self.launch_sorted = np.asarray(items.launch_ts)[self.launch_order]
        self.region_popular = np.asarray(bundle.region_popular)
        self.region_share = _region_share(items.regions, items.stock, len(bundle.vocab.get("regions", [])))
        by_name = {
            "ann": self.ann,
            "new-items": self.new_items,
            "region-popular": self.popular,
            "text": self.text_recall,
        }
        self.by_kind = {
            STOREFRONT: [by_name[s] for s in pipeline.storefront],
            SIMILAR_ITEMS: [by_name[s] for s in pipeline.similar_items],
            SEARCH: [by_name[s] for s in pipeline.search],
        }

    def stage(self, req: Request, deadline: float | None) -> None:
        """Appends each listed source's candidates to ``req.candidates``."""
        for source in self.by_kind[req.kind]:
            got = source(req, deadline)
            if got is not None:
                req.candidates.append(got)

    # -- the sources ------------------------------------------------------------------------------

    def ann(self, req: Request, deadline: float | None) -> Candidates | None:
        query = req.resolved.query
        if query is None:
            return None
        factor = (
            self.ranking.similar_candidates_factor
            if req.kind == SIMILAR_ITEMS
            else self.ranking.candidates_factor
        )
        need = math.ceil((req.page.page + 1) * req.page.page_size * factor)
        # Deep enough that the region's in-stock share of the nearest items fills the page at
        # once: a second, deeper search costs far more than a slightly deeper first one.
        region = req.resolved.region
        share = float(self.region_share[region]) if 0 <= region < len(self.region_share) else 1.0
        state = self.state
        kept = (
            state.keep(self.regions)
            if state is not None and 0 <= region < 64 * self.regions.shape[1]
            else None
        )
        got = retrieve(
            self.index,
            self.vectors,
            self.catalog,
            req.rules,
            query,
            need,
            self.retrieval,
            deadline,
            share=share,
            kept=kept,
            region=region,
            lists=self.lists,
            half=self.half,
        )
        bits = source_bits(STRATEGY_SOURCE[got.strategy], len(got.rows))
        return Candidates(got.rows, got.relevance, bits, True, got.eligible_count, got.partial)

    def new_items(self, req: Request, deadline: float | None) -> Candidates | None:
        """The most recently launched eligible items within the new-item window, the most relevant
        ``new_candidates_top`` of them: a fixed count, so every page's pool is the same."""
        cfg = self.ranking
        query = req.resolved.query
        if query is None or not (cfg.new_item_reserved_share or cfg.new_item_boost):
            return None
        now = req.now
        lo = np.searchsorted(self.launch_sorted, now - cfg.new_window_seconds, side="left")
        hi = np.searchsorted(self.launch_sorted, now, side="right")
        rows = self.launch_order[max(lo, hi - cfg.new_candidates) : hi].astype(np.int64)
        if len(rows):
            rows = rows[self.catalog.check_rows(req.rules, rows).view(bool)]
        rows, relevance = exact_search(self.vectors, rows, query, cfg.new_candidates_top)
        return Candidates(rows, relevance, source_bits(SOURCE_NEW, len(rows)), True)

    def popular(self, req: Request, deadline: float | None) -> Candidates | None:
        cfg = self.ranking
        query = req.resolved.query
        if query is None or cfg.popular_candidates <= 0 or cfg.stage(req.resolved.lifecycle).popularity <= 0:
            return None
        rows = self.popular_rows(req.resolved.region)[: cfg.popular_candidates]
        relevance = self.vectors[rows] @ query[0] if len(rows) else _NO_SCORES
        return Candidates(rows, relevance, source_bits(SOURCE_POPULAR, len(rows)), False)

    def text_recall(self, req: Request, deadline: float | None) -> Candidates | None:
        """Search: BM25 and vector recall fused (RRF); in ``personalised`` mode blended with the
        shopper's vector. A query with no known token is answered by the fallback, degraded."""
        page = req.page
        got = self.text.recall(req.query, req.rules, (page.page + 1) * page.page_size, req.mode, deadline)
        if len(got.rows) == 0 and not got.known_tokens:
            req.degraded = True
            return None
        relevance = got.text
        query = req.resolved.query
        if req.mode == "personalised" and query is not None:
            w = self.text.config.text_weight
            personal = self.vectors[got.rows] @ query[0]
            relevance = (w * got.text + (1 - w) * personal).astype(np.float32)
        bits = (np.where(got.in_bm25, SOURCE_BM25, 0) | np.where(got.in_vector, SOURCE_VECTOR, 0)).astype(
            np.uint8
        )
        partial = got.partial or not got.known_tokens
        return Candidates(got.rows, relevance, bits, True, got.eligible_count, partial)

    def popular_rows(self, region: int) -> np.ndarray:
        """The region's precomputed popular list (int64 rows, best first)."""
        rows = np.asarray(self.region_popular[region], dtype=np.int64)
        return rows[rows >= 0]


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
