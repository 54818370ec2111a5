"""Filter-aware retrieval against brute force over the eligible rows."""

import numpy as np
import pytest
from peakrec import _core
from peakrec.retrieval.search import RetrievalConfig, exact_search, retrieve
from peakrec.state import ItemState
from synthetic import NOW, open_catalog, synthetic_bundle

SELECTIVITIES = [0.0001, 0.001, 0.01, 0.05, 0.2, 0.5, 1.0]


def _queries(bundle, count=20):
    users = bundle.users
    return users.vectors[np.flatnonzero(users.has_vector)[:count]]


def _rules(bundle, selectivity, seed=0, correlated=False):
    """Rules whose eligible set is a random (or category-correlated) share of the catalogue."""
    n = len(bundle.items.brand)
    state = ItemState.from_arrays(np.full(n, 5, np.int32), np.ones(n, np.float32))
    if correlated:
        # Whole categories at once: eligible items cluster instead of spreading evenly.
        rank = np.argsort(np.random.default_rng(seed).random(60))[bundle.items.category]
        state.available[:] = (rank + 0.5) / 60 <= max(selectivity, 1 / 60)
    else:
        state.available[:] = np.random.default_rng(seed).random(n) < selectivity
    state.available[np.random.default_rng(seed).integers(0, n)] = 1  # never empty
    return state, _core.Rules(state.stock, state.price, state.available, 0, NOW + 10**9)


def _catalog_everywhere(bundle):
    return open_catalog(len(bundle.items.brand), bundle.items.brand, bundle.items.category)


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize("selectivity", SELECTIVITIES)
def test_filtered_recall_at_100_is_at_least_095(hnsw_bundle, selectivity, correlated):
    catalog = _catalog_everywhere(hnsw_bundle)
    state, rules = _rules(hnsw_bundle, selectivity, correlated=correlated)
    eligible = np.flatnonzero(state.available)
    vectors = hnsw_bundle.items.vectors
    recalls = []
    for q in _queries(hnsw_bundle):
        q = q[None].copy()
        truth = exact_search(vectors, eligible, q, 100)[0]
        got = retrieve(hnsw_bundle.index, vectors, catalog, rules, q, 100, RetrievalConfig())
        assert np.isin(got.rows, eligible).all(), "an ineligible item was retrieved"
        assert len(got.rows) >= min(100, len(eligible)), "fewer candidates than eligible items allow"
        recalls.append(len(np.intersect1d(truth, got.rows[:100])) / len(truth))
    assert np.mean(recalls) >= 0.95, f"recall {np.mean(recalls):.3f} at selectivity {selectivity}"


@pytest.mark.parametrize("strategy", ["ann", "bitmap", "exact"])
def test_every_strategy_returns_only_eligible_rows_and_fills(hnsw_bundle, strategy):
    catalog = _catalog_everywhere(hnsw_bundle)
    state, rules = _rules(hnsw_bundle, 0.3, seed=3)
    q = _queries(hnsw_bundle, 1).copy()
    got = retrieve(
        hnsw_bundle.index,
        hnsw_bundle.items.vectors,
        catalog,
        rules,
        q,
        150,
        RetrievalConfig(),
        force=strategy,
    )
    assert state.available[got.rows].all()
    assert len(got.rows) >= 150
    assert got.strategy == strategy


def test_strategy_follows_selectivity(hnsw_bundle):
    catalog = _catalog_everywhere(hnsw_bundle)
    config = RetrievalConfig(exact_max_rows=500)
    picked = {}
    for sel in [0.01, 0.05, 1.0]:
        _, rules = _rules(hnsw_bundle, sel)
        q = _queries(hnsw_bundle, 1).copy()
        picked[sel] = retrieve(
            hnsw_bundle.index, hnsw_bundle.items.vectors, catalog, rules, q, 100, config
        ).strategy
    assert picked == {0.01: "exact", 0.05: "bitmap", 1.0: "ann"}


def test_exact_search_orders_best_first_with_row_ties():
    vectors = np.array([[1.0], [2.0], [2.0], [0.5]], np.float32)
    rows, scores = exact_search(vectors, np.array([0, 1, 2, 3]), np.ones((1, 1), np.float32), 3)
    assert rows.tolist() == [1, 2, 0]
    assert scores.tolist() == [2.0, 2.0, 1.0]


@pytest.fixture(scope="module")
def ivf_bundle():
    return synthetic_bundle(n_items=20_000, n_users=100, dim=32, seed=5, index_factory="IVF64,Flat")


@pytest.mark.parametrize("selectivity", [0.001, 0.05, 0.3, 1.0])
def test_filtered_recall_under_ivf(ivf_bundle, selectivity):
    catalog = _catalog_everywhere(ivf_bundle)
    state, rules = _rules(ivf_bundle, selectivity, seed=2)
    eligible = np.flatnonzero(state.available)
    vectors = ivf_bundle.items.vectors
    config = RetrievalConfig(nprobe=32, exact_max_rows=500)  # the unfiltered recall of this index is ~0.97
    recalls = []
    for q in _queries(ivf_bundle, 10):
        q = q[None].copy()
        truth = exact_search(vectors, eligible, q, 100)[0]
        got = retrieve(ivf_bundle.index, vectors, catalog, rules, q, 100, config)
        assert np.isin(got.rows, eligible).all()
        recalls.append(len(np.intersect1d(truth, got.rows[:100])) / len(truth))
    assert np.mean(recalls) >= 0.95, f"recall {np.mean(recalls):.3f} at selectivity {selectivity}"
