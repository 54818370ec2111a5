"""Filter-aware vector retrieval: pick a strategy by the share of eligible items, then search.

Four strategies, chosen per request (thresholds measured in docs/retrieval.md):

* ``ann``: most items eligible. For an HNSW index over flat vectors, peakrec's own walk of the
  FAISS graph that returns only eligible rows (``retrieval.hnsw``, ``rust/core/src/hnsw.rs``);
  otherwise a plain ANN search whose results are checked row by row (Rust), deepened by
  ``1 / share`` (the share observed among its results) until enough are eligible.
* ``bitmap``: a middling share eligible. FAISS search restricted by an ``IDSelectorBitmap`` over the
  eligibility bitset, with a search breadth scaled up by ``1 / fraction`` so recall holds.
* ``exact``: few eligible. Exact inner products over just the eligible rows (gather + matmul), or,
  with the item state's kept sets (``retrieval.kept``), over the kept rows in Rust
  (``Catalog.scan_kept``), chosen from their count before any search.
* ``lists``: with kept sets and the bundle's inverted lists (``retrieval.lists``), a share between
  ``scan_max_share`` and ``lists_max_share`` (both measured by the build): the lists nearest the
  query, over their kept rows only (``_core.probe_lists``).

The eligible rows are never read from the ANN results blindly: ``ann`` results go through
``Catalog.check_rows`` and the other two only ever see eligible rows, so no ineligible item leaves.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass

import faiss
import numpy as np

from peakrec import _core
from peakrec.config import RetrievalConfig
from peakrec.retrieval.hnsw import graph_of
from peakrec.retrieval.kept import KeptEligibility
from peakrec.retrieval.lists import ItemLists


@dataclass(slots=True)
class Retrieved:
    """Candidates of one query: ``rows`` int64 and ``relevance`` float32 (inner products), best
    first; ``eligible_count`` exact, or estimated from a sample for ``ann``."""

    rows: np.ndarray
    relevance: np.ndarray
    strategy: str
    eligible_count: int
    count_estimated: bool = False
    partial: bool = False  # the deadline stopped a deepening before the candidates were complete


_PARAMS: dict[tuple, object] = {}


def _params(index: faiss.Index, breadth: int, config: RetrievalConfig, sel=None):
    """SearchParameters of the right kind for ``index`` with a breadth of at least ``breadth``.
    Those without a selector are cached by index kind (not by index: a swapped-in index may
    reuse a freed one's id): building one through SWIG costs ~15 us."""
    if sel is None:
        key = (_index_kind(index), breadth, config.ef_search, config.nprobe)
        cached = _PARAMS.get(key)
        if cached is None:
            if len(_PARAMS) > 4096:
                _PARAMS.clear()
            cached = _PARAMS[key] = _make_params(index, breadth, config, None)
        return cached
    return _make_params(index, breadth, config, sel)


def _make_params(index: faiss.Index, breadth: int, config: RetrievalConfig, sel):
    kind = _index_kind(index)
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(sel=sel, efSearch=max(config.ef_search, breadth))
    if kind == "ivf":
        return faiss.SearchParametersIVF(sel=sel, nprobe=max(config.nprobe, breadth))
    return faiss.SearchParameters(sel=sel) if sel is not None else None


_KINDS: dict[int, tuple] = {}


def _remember(cache: dict[int, tuple], index: faiss.Index, value: tuple) -> tuple:
    """Caches ``value`` (whose first item is a weak reference to ``index``) by ``id(index)``
    without keeping the index alive: the entry leaves with the index, so a hot-swapped bundle's
    index (and what is cached for it) is freed, and its id cannot meet a stale entry."""
    cache[id(index)] = value
    weakref.finalize(index, cache.pop, id(index), None)
    return value


def _index_info(index: faiss.Index) -> tuple:
    """``(weakref to index, kind, d, search_c)``, cached per index object: SWIG attribute reads
    and FAISS's Python wrappers cost microseconds each, a noticeable share of a ~300 us request."""
    cached = _KINDS.get(id(index))
    if cached is not None and cached[0]() is index:
        return cached
    return _remember(_KINDS, index, _describe(index))


def _describe(index: faiss.Index) -> tuple:
    real = faiss.downcast_index(index)
    if isinstance(real, faiss.IndexHNSW):
        kind = "hnsw"
    elif faiss.try_extract_index_ivf(real) is not None:
        kind = "ivf"
    else:
        kind = "flat"
    return weakref.ref(index), kind, int(index.d), _search_c(index)


def _search_c(index: faiss.Index):
    """``fn(index, n, x_ptr, k, distances_ptr, labels_ptr, params)``: the SWIG function behind
    ``index.search_c`` (that method is a Python def forwarding to it), else ``search_c`` itself."""
    for cls in type(index).__mro__:
        if "search_c" in cls.__dict__:
            fn = getattr(faiss._swigfaiss, cls.__name__ + "_search", None)
            return cls.__dict__["search_c"] if fn is None else fn
    return type(index).search_c


def _index_kind(index: faiss.Index) -> str:
    return _index_info(index)[1]


_F32, _I64 = np.dtype(np.float32), np.dtype(np.int64)
_swig_ptr = faiss._swigfaiss.swig_ptr  # the builtin, not faiss.swig_ptr's Python forwarder


def search(index: faiss.Index, query: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
    """One query's top ``k``: ``(rows int64[<=k], scores float32[<=k])``, -1 padding removed.

    Calls FAISS's SWIG search directly, past its Python wrapper (shape checks and conversions done
    here once)."""
    info = _KINDS.get(id(index))
    if info is None or info[0]() is not index:
        # Not cached: a downcast sub-index (HNSW storage) is a new wrapper object on every call.
        info = _describe(index)
    d = info[2]
    if query.dtype != _F32 or not query.flags.c_contiguous or query.shape != (1, d):
        query = np.ascontiguousarray(query, dtype=np.float32)
        if query.shape != (1, d):
            raise ValueError(f"query: expected shape (1, {d}), got {query.shape}")
    scores = np.empty(k, _F32)
    rows = np.empty(k, _I64)
    info[3](index, 1, _swig_ptr(query), k, _swig_ptr(scores), _swig_ptr(rows), params)
    if k and rows[k - 1] < 0:  # FAISS pads a short result with -1, at the end
        keep = rows >= 0
        return rows[keep], scores[keep]
    return rows, scores


def exact_search(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int):
    """Exact top ``k`` by inner product among ``rows`` of ``vectors`` (float32[n, d])."""
    if len(rows) == 0:
        return rows.astype(np.int64), np.empty(0, np.float32)
    scores = vectors[rows] @ query[0]
    if len(rows) > k:
        top = np.argpartition(-scores, k - 1)[:k]
    else:
        top = np.arange(len(rows))
    # Best first; ties by row so results are deterministic.
    top = top[np.lexsort((rows[top], -scores[top]))]
    return rows[top].astype(np.int64, copy=False), scores[top].astype(np.float32, copy=False)


def bitmap_selector(words: np.ndarray, n: int):
    """An ``IDSelectorBitmap`` over the eligibility bitset ``words`` (uint64); keep the returned
    bytes alive as long as the selector."""
    bitmap = words.view(np.uint8)
    return faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap)), bitmap


def retrieve(
    index: faiss.Index,
    vectors: np.ndarray,
    catalog: _core.Catalog,
    rules: _core.Rules,
    query: np.ndarray,
    need: int,
    config: RetrievalConfig,
    deadline: float | None = None,
    force: str | None = None,
    share: float = 1.0,
    kept: KeptEligibility | None = None,
    region: int = 0,
    lists: ItemLists | None = None,
    half: np.ndarray | None = None,
) -> Retrieved:
    """Eligible candidates for ``query`` (float32[1, d]): at least ``need`` of them whenever that
    many items are eligible, best first.

    ``force`` picks a strategy instead of the thresholds (tests and benchmarks). ``share``: the
    expected eligible share (e.g. the region's in-stock share); the first ANN search asks for
    ``need / share`` so that one search usually fills the page. ``kept``: the item state's kept
    eligible-row sets (``retrieval.kept``) and ``region`` the shopper's region (the one in
    ``rules``): their count chooses the plan before any search, and few kept rows are scanned
    exactly instead of walking the graph or passing over all items. ``lists``: the bundle's
    inverted lists, probed over the kept rows when their share is middling. ``half``: ``vectors``
    in half precision (``uint16[n, d]``, the bundle's ``index_half``), which the scan and the probe
    then read instead (the rows they return are scored in full precision).
    """
    n = len(catalog)
    need = max(1, min(need, n))
    if kept is not None and force in (None, "exact", "lists"):
        region_rows, count = kept.region(region)
        # Few kept rows: scanning them beats anything else. Without lists, up to the share where
        # the walk gives up; with them, up to the share the build measured them faster from.
        scan_below = config.graph_min_share if lists is None else config.scan_max_share
        if force == "exact" or (force is None and count < scan_below * n):
            return _scan_kept(catalog, rules, vectors, half, kept, region_rows, count, query, need)
        if lists is not None and (force == "lists" or count < config.lists_max_share * n):
            target = lists.target(count, n, need)
            if target is not None:
                got = _probe(
                    lists, catalog, rules, vectors, half, kept, region_rows, count, query, need, target
                )
                if got is not None:
                    return got
                # the kept rows lie far from the query: scan them
                return _scan_kept(catalog, rules, vectors, half, kept, region_rows, count, query, need)
            if force == "lists" or count < config.graph_min_share * n:
                # the probe declines (its target is most of the kept rows, or beyond what the
                # build measured to hold recall) where the walk would give up: scan them
                return _scan_kept(catalog, rules, vectors, half, kept, region_rows, count, query, need)
        share = min(share, count / n)  # the walk's first beam is then wide enough at once
    graph = graph_for(index) if force in (None, "ann") else None
    if graph is not None:
        got = _graph_ann(graph, catalog, n, rules, query, need, config, deadline, share)
        if got is not None:
            return got
    if force in (None, "ann"):
        # ANN first, at the page's own depth: when most items are eligible this one search (as
        # cheap as an unfiltered one) fills the page, and its results tell the eligible share
        # around the query, which sets how deep to go or whether to switch strategy.
        got = _ann(index, catalog, n, rules, query, need, config, deadline, force == "ann", share)
        if got is not None:
            return got
    if kept is not None and force is None:
        # the walk gave up (request rules correlated with the query): the kept rows, not all items
        region_rows, count = kept.region(region)
        return _scan_kept(catalog, rules, vectors, half, kept, region_rows, count, query, need)
    words, count = catalog.eligible(rules)
    strategy = force if force in ("bitmap", "exact") else None
    if strategy is None:
        strategy = "exact" if count <= config.exact_max_rows else "bitmap"
    if strategy == "bitmap" and count > 0:
        got = _bitmap(index, words, count, n, query, need, config)
        if len(got.rows) >= min(need, count):
            return got
    eligible_rows = _core.bitset_rows(words)
    rows, scores = exact_search(vectors, eligible_rows, query, need)
    return Retrieved(rows, scores, "exact", count)


def _scan_kept(catalog, rules, vectors, half, kept, region_rows, count, query, need) -> Retrieved:
    """Exact top ``need`` over the rows both live and sold in the region that ``rules`` admit (Rust,
    GIL released): reads ``count`` rows' vectors, never all items'. ``eligible_count`` is the kept
    count, an upper bound of this request's (its own rules may remove a few more)."""
    if query.dtype != _F32 or not query.flags.c_contiguous:
        query = np.ascontiguousarray(query, dtype=np.float32)
    rows, scores = catalog.scan_kept(
        rules, vectors, kept.live, query[0], need, region_rows, half, kept.live_summary
    )
    return Retrieved(rows, scores, "exact", count, count_estimated=True)


def _probe(
    lists, catalog, rules, vectors, half, kept, region_rows, count, query, need, target
) -> Retrieved | None:
    """``lists`` probed until ``target`` admitted rows were scored (``ItemLists.target``); None
    when it gave up: ``target`` kept rows spread evenly over the lists are met within
    ``target * n / count`` rows, and a probe that passes twice that without meeting them finds
    them sparser near the query than elsewhere (they lie far from it), where the factor measured
    on evenly kept rows would not hold its recall."""
    n = len(catalog)
    if query.dtype != _F32 or not query.flags.c_contiguous:
        query = np.ascontiguousarray(query, dtype=np.float32)
    max_tested = math.ceil(2 * target * n / count)
    found = _core.probe_lists(
        lists.lists, catalog, rules, vectors, kept.live, query[0], need, target, max_tested, region_rows, half
    )
    if found is None:
        return None
    return Retrieved(found[0], found[1], "lists", count, count_estimated=True)


def _first_depth(need: int, n: int, config: RetrievalConfig) -> int:
    # A little over the need costs nothing while within HNSW's efSearch, and spares a second
    # search when a few of the nearest items are ineligible.
    return min(n, max(need, math.ceil(need * config.first_margin)))


def _ann_breadth(kind: str, depth: int, first_depth: int, config: RetrievalConfig) -> int:
    # HNSW needs efSearch >= depth; IVF probes more lists as the search deepens (the deeper
    # neighbours sit in farther lists), by the square root of the deepening.
    if kind == "hnsw":
        return math.ceil(depth * config.ann_breadth)
    return math.ceil(config.nprobe * math.sqrt(depth / first_depth))


def _ann(index, catalog, n, rules, query, need, config, deadline, forced, share=1.0) -> Retrieved | None:
    depth = first_depth = _first_depth(min(n, math.ceil(need / share)), n, config)
    max_depth = n if forced else config.max_ann_depth
    kind = _index_info(index)[1]
    while True:
        breadth = _ann_breadth(kind, depth, first_depth, config)
        rows, scores = search(index, query, depth, _params(index, breadth, config))
        ok = catalog.check_rows(rules, rows)
        found = int(np.count_nonzero(ok))  # a Python int: numpy scalars are slow in the arithmetic below
        got = len(rows)
        seen = found / max(got, 1)  # eligible share among the nearest items
        partial = deadline is not None and time.monotonic() > deadline
        if found >= need or depth >= n or got < depth or partial:
            est = round(seen * n)
            if found < got:  # (all eligible, the usual case, needs no copies)
                ok = ok.view(np.bool_)
                rows, scores = rows[ok], scores[ok]
            return Retrieved(rows, scores, "ann", est, count_estimated=True, partial=partial)
        if not forced and seen < config.ann_min_fraction:
            return None  # few eligible near the query: the bitset strategies take over
        # Deepen by the share actually observed, with a margin.
        depth = min(n, max(depth * 2, math.ceil(need * config.oversample / max(seen, 1e-6))))
        if depth > max_depth:
            return None


_GRAPHS: dict[int, tuple] = {}


def graph_for(index: faiss.Index, half: bool | np.ndarray = True) -> _core.HnswGraph | None:
    """peakrec's view of ``index``'s HNSW graph (``retrieval.hnsw``), or None when it has none;
    built once per index (a pass over the graph checks it) and dropped with it. The graph views
    the index's memory: whoever keeps the graph keeps the index (as ``Recommender`` does).
    ``half`` is ``graph_of``'s, used when the graph is built (the first call for ``index``)."""
    cached = _GRAPHS.get(id(index))
    if cached is None or cached[0]() is not index:
        cached = _remember(_GRAPHS, index, (weakref.ref(index), graph_of(index, half)))
    return cached[1]


def _graph_ann(graph, catalog, n, rules, query, need, config, deadline, share) -> Retrieved | None:
    """``ann`` by peakrec's walk of the HNSW graph, which asks the rules about the nodes it
    reached, nearest first: every row it returns is eligible. FAISS's beam of ``ef_search`` is
    widened by ``1 / sqrt(share)``, which keeps recall at the unfiltered search's down to a share
    of about 0.2 (docs/retrieval.md), instead of the ``1 / share`` a search filtered afterwards
    needs. ``share`` is the caller's
    prior; when the share seen near the query is much lower the walk is redone wider once. None
    when that share is below ``graph_min_share`` or the page cannot be filled: the other
    strategies take over."""
    base = max(config.ef_search, math.ceil(need * config.ann_breadth))
    ef = min(n, math.ceil(base / math.sqrt(min(max(share, config.graph_min_share), 1.0))))
    for _ in range(2):
        rows, scores, _reached, asked, admitted = _core.hnsw_search(graph, catalog, rules, query[0], need, ef)
        seen = admitted / max(asked, 1)
        if seen < config.graph_min_share:
            return None
        partial = deadline is not None and time.monotonic() > deadline
        wider = min(n, math.ceil(base / math.sqrt(seen)))
        if partial or (len(rows) >= need and wider <= ef * 1.25):
            return Retrieved(rows, scores, "ann", round(seen * n), count_estimated=True, partial=partial)
        ef = max(wider, ef * 2)
    return None


def _bitmap(index, words, count, n, query, need, config) -> Retrieved:
    fraction = count / n
    selector, _bitmap_bytes = bitmap_selector(words, n)
    kind = _index_kind(index)
    if kind == "hnsw":
        # HNSW walks its graph through ineligible nodes and loses recall as the share falls
        # (0.63 at 1% in docs/retrieval.md); its flat storage scanned under the bitmap is exact
        # and reads vectors in row order, faster than gathering the eligible rows.
        storage = faiss.downcast_index(faiss.downcast_index(index).storage)
        rows, scores = search(storage, query, need, faiss.SearchParameters(sel=selector))
        return Retrieved(rows, scores, "bitmap", count)
    breadth = math.ceil(config.nprobe / fraction**config.bitmap_breadth_exponent)
    rows, scores = search(index, query, need, _params(index, breadth, config, sel=selector))
    return Retrieved(rows, scores, "bitmap", count)
