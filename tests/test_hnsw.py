"""peakrec's walk of a FAISS HNSW graph against FAISS's own search of the same index.

The walk is FAISS's algorithm, so FAISS is an exact oracle for the full-precision walk: unfiltered,
its results equal FAISS's search; filtered, FAISS's search under an ``IDSelectorBitmap`` of the
eligible rows. The default half-precision walk is held to FAISS's results within a margin.
"""

import faiss
import numpy as np
import pytest
from peakrec import _core
from peakrec.errors import InvalidInputError
from peakrec.retrieval.hnsw import graph_of, half_vectors
from peakrec.retrieval.search import bitmap_selector, search
from peakrec.state import ItemState
from synthetic import open_catalog

N, DIM = 5000, 24


@pytest.fixture(scope="module", params=[faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2], ids=["ip", "l2"])
def index(request):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    index = faiss.index_factory(DIM, "HNSW16,Flat", request.param)
    index.hnsw.efConstruction = 40
    index.add(vectors)
    return index


def _queries(count=25):
    return np.random.default_rng(9).standard_normal((count, DIM)).astype(np.float32)


def _rules(share: float, seed: int = 0):
    state = ItemState.from_arrays(np.full(N, 3, np.int32), np.ones(N, np.float32))
    state.available[:] = np.random.default_rng(seed).random(N) < share
    return state, _core.Rules(state.stock, state.price, state.available, 0, 0)


@pytest.mark.parametrize("k,ef", [(10, 16), (100, 128), (50, 300)])
def test_unfiltered_walk_equals_faiss_search(index, k, ef):
    graph, catalog = graph_of(index, half=False), open_catalog(N)
    params = faiss.SearchParametersHNSW(efSearch=ef)
    for q in _queries():
        rows, scores, reached, asked, admitted = _core.hnsw_search(graph, catalog, None, q, k, ef)
        want_rows, want_scores = search(index, q[None], k, params)
        assert rows.tolist() == want_rows.tolist()
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
        assert admitted == asked and reached >= asked >= k


@pytest.mark.parametrize("share", [0.9, 0.5, 0.2])
def test_filtered_walk_equals_faiss_search_under_the_eligibility_bitmap(index, share):
    graph, catalog = graph_of(index, half=False), open_catalog(N)
    state, rules = _rules(share, seed=int(share * 10))
    words, _count = catalog.eligible(rules)
    selector, _keep = bitmap_selector(words, N)
    params = faiss.SearchParametersHNSW(efSearch=64, sel=selector)
    for q in _queries():
        rows, _scores, _reached, asked, admitted = _core.hnsw_search(graph, catalog, rules, q, 40, 64)
        want_rows, _ = search(index, q[None], 40, params)
        assert rows.tolist() == want_rows.tolist()
        assert state.available[rows].all(), "an ineligible row was returned"
        assert 0 < admitted <= asked


def test_widened_walk_keeps_the_unfiltered_recall(index):
    """Widening the beam by 1/sqrt(share), as retrieve does, keeps recall@50 against brute force
    over the eligible rows within 0.03 of the unfiltered walk's at the same base beam."""
    graph, catalog = graph_of(index, half=False), open_catalog(N)
    vectors = faiss.rev_swig_ptr(faiss.downcast_index(index.storage).get_xb(), N * DIM).reshape(N, DIM)
    sign = -1 if index.metric_type == faiss.METRIC_L2 else 1

    def recall(rules, eligible, ef):
        hits = []
        for q in _queries(40):
            if sign > 0:
                scores = vectors[eligible] @ q
            else:
                scores = -((vectors[eligible] - q) ** 2).sum(1)
            truth = eligible[np.argsort(-scores, kind="stable")[:50]]
            rows = _core.hnsw_search(graph, catalog, rules, q, 50, ef)[0]
            hits.append(len(np.intersect1d(truth, rows)) / 50)
        return np.mean(hits)

    base = recall(None, np.arange(N), 50)
    for share in (0.6, 0.3):
        state, rules = _rules(share, seed=5)
        eligible = np.flatnonzero(state.available)
        assert recall(rules, eligible, int(np.ceil(50 / np.sqrt(share)))) >= base - 0.03


def test_bad_input_is_a_clear_error(index):
    graph, catalog = graph_of(index, half=False), open_catalog(N)
    with pytest.raises(InvalidInputError, match="dims"):
        _core.hnsw_search(graph, catalog, None, np.ones(DIM + 1, np.float32), 5, 16)
    bad = np.ones(DIM, np.float32)
    bad[3] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        _core.hnsw_search(graph, catalog, None, bad, 5, 16)
    m = N + 1
    bigger = _core.Rules(np.full(m, 3, np.int32), np.ones(m, np.float32), np.ones(m, np.uint8), 0, 0)
    with pytest.raises(InvalidInputError, match="nodes"):
        _core.hnsw_search(graph, open_catalog(m), bigger, np.ones(DIM, np.float32), 5, 16)


def test_a_corrupt_graph_is_refused(index):
    hnsw = index.hnsw
    neighbors = faiss.vector_to_array(hnsw.neighbors).copy()
    neighbors[5] = N + 7
    storage = faiss.downcast_index(index.storage)
    vectors = faiss.rev_swig_ptr(storage.get_xb(), N * DIM).reshape(N, DIM)
    with pytest.raises(InvalidInputError, match="out of range"):
        _core.HnswGraph(
            neighbors.view(np.uint8),
            faiss.vector_to_array(hnsw.offsets).view(np.uint8),
            faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int32),
            faiss.vector_to_array(hnsw.levels).view(np.uint8),
            np.ascontiguousarray(vectors).view(np.uint8).ravel(),
            DIM,
            None,
            int(hnsw.entry_point),
            int(hnsw.max_level),
            True,
        )


def test_only_flat_hnsw_indexes_have_a_graph():
    x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    flat = faiss.IndexFlatIP(8)
    flat.add(x)
    sq = faiss.index_factory(8, "HNSW8,SQ8", faiss.METRIC_INNER_PRODUCT)
    sq.train(x)
    sq.add(x)
    assert graph_of(flat) is None and graph_of(sq) is None
    assert graph_of(faiss.index_factory(8, "HNSW8,Flat")) is None  # empty


def test_half_precision_walk_finds_what_faiss_finds(index):
    """The default walk reads half-precision vectors: its rows may differ from FAISS's only at
    the margin, and they come ordered and scored in full precision."""
    graph, catalog = graph_of(index), open_catalog(N)
    params = faiss.SearchParametersHNSW(efSearch=128)
    overlaps = []
    for q in _queries():
        rows, scores, *_ = _core.hnsw_search(graph, catalog, None, q, 100, 128)
        want_rows, want_scores = search(index, q[None], 100, params)
        overlaps.append(len(np.intersect1d(rows, want_rows)) / 100)
        exact = dict(zip(want_rows.tolist(), want_scores.tolist()))
        shared = [i for i, r in enumerate(rows.tolist()) if r in exact]
        np.testing.assert_allclose(
            scores[shared], [exact[r] for r in rows[shared].tolist()], rtol=1e-5, atol=1e-5
        )
        order = scores if index.metric_type == faiss.METRIC_L2 else -scores
        assert np.all(np.diff(order) >= 0), "rows are not nearest first"
    assert np.mean(overlaps) >= 0.98


def test_vectors_half_precision_cannot_hold_are_walked_in_full():
    x = np.random.default_rng(2).standard_normal((500, 8)).astype(np.float32) * 1e5
    index = faiss.index_factory(8, "HNSW8,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(x)
    rows = _core.hnsw_search(graph_of(index), open_catalog(500), None, x[3] / 1e5, 10, 32)[0]
    want, _ = search(index, (x[3] / 1e5)[None], 10, faiss.SearchParametersHNSW(efSearch=32))
    assert rows.tolist() == want.tolist()


def test_caches_let_a_swapped_out_index_go():
    """A hot swap drops the old bundle: its index, graph and half-precision copy must be freed,
    not kept alive by the per-index caches."""
    import gc
    import weakref

    from peakrec.retrieval import search as retrieval

    x = np.random.default_rng(1).standard_normal((1000, 8)).astype(np.float32)
    index = faiss.index_factory(8, "HNSW8,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(x)
    assert retrieval.graph_for(index) is not None
    retrieval._index_info(index)
    alive = weakref.ref(index)
    key = id(index)
    del index
    gc.collect()
    assert alive() is None
    assert key not in retrieval._GRAPHS and key not in retrieval._KINDS


def test_walk_over_a_built_bundles_memory_mapped_index(tmp_path):
    """`peakrec build --index-factory HNSW...` then `load_bundle`: FAISS maps the index's arrays at
    whatever byte offset the file gives them (often not aligned for their type). The graph must
    still read them right: its walk equals FAISS's search of the mapped index."""
    import peakrec
    from peakrec.cli import main

    demo, bundles = tmp_path / "demo", tmp_path / "bundles"
    assert main(["demo-data", "--items", "3000", "--users", "200", "--dim", "16", "--out", str(demo)]) == 0
    inputs = ["--items", "items.jsonl", "--users", "users.jsonl", "--item-vectors", "item_vectors.npy"]
    inputs += ["--user-vectors", "user_vectors.npy", "--config", "build.toml"]
    args = [a if a.startswith("--") else str(demo / a) for a in inputs]
    assert main(["build", *args, "--index-factory", "HNSW16,Flat", "--out", str(bundles), "--quiet"]) == 0
    bundle = peakrec.load_bundle(bundles / (bundles / "CURRENT").read_text().strip())
    graph, catalog = graph_of(bundle.index, half=False), open_catalog(3000)
    params = faiss.SearchParametersHNSW(efSearch=64)
    for q in np.random.default_rng(4).standard_normal((10, 16)).astype(np.float32):
        rows = _core.hnsw_search(graph, catalog, None, q, 20, 64)[0]
        assert rows.tolist() == search(bundle.index, q[None], 20, params)[0].tolist()
    # The bundle carries the walk's half-precision vectors, mapped, so that workers share them.
    want = np.asarray(bundle.items.vectors).astype(np.float16).view(np.uint16)
    assert isinstance(bundle.index_half, np.memmap) and np.array_equal(bundle.index_half, want)
    walk = peakrec.Recommender(bundle).graph
    for q in np.random.default_rng(5).standard_normal((10, 16)).astype(np.float32):
        rows = _core.hnsw_search(walk, catalog, None, q, 20, 64)[0]
        assert len(set(rows.tolist()) & set(search(bundle.index, q[None], 20, params)[0].tolist())) >= 19


def test_half_precision_vectors_given_must_fit_the_index(index):
    """A bundle's ``index_half.npy`` is numpy's float16 of the vectors; one of another shape or in
    Fortran order (which the walk would read transposed) is refused, naming the problem."""
    half = half_vectors(index)
    assert np.array_equal(half, index.reconstruct_n(0, index.ntotal).astype(np.float16).view(np.uint16))
    assert graph_of(index, half) is not None
    with pytest.raises(InvalidInputError, match="not C-contiguous"):
        graph_of(index, np.asfortranarray(half))
    with pytest.raises(InvalidInputError, match="uint16"):
        graph_of(index, half[:-1])
