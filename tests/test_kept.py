"""Kept eligibility (issue 14): the kept sets follow live updates, and retrieval over them equals
brute force over the eligible rows at every selectivity, including far from the query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_engine import load_bundle, write_bundle
from peakrec import Recommender, _core
from peakrec.pipeline.types import Page, Shopper, StorefrontRequest
from peakrec.retrieval.search import RetrievalConfig, exact_search, retrieve
from peakrec.service.statefile import ItemUpdate, SharedItemState
from peakrec.state import ItemState
from synthetic import NOW, open_catalog

SELECTIVITIES = [0.0005, 0.001, 0.01, 0.1, 0.5, 1.0]


def _brute_counts(regions: np.ndarray, state: ItemState, region: int) -> tuple[int, int]:
    live = (state.stock > 0) & (state.available != 0)
    sold = (regions[:, region // 64] >> np.uint64(region % 64)) & np.uint64(1) != 0
    return int(live.sum()), int((live & sold).sum())


def _live_rows(kept) -> np.ndarray:
    return _core.bitset_rows(kept.live)


def test_kept_sets_follow_updates_made_through_the_state(bundle):
    items = bundle.items
    regions = np.ascontiguousarray(items.regions, dtype=np.uint64)
    state = ItemState.from_arrays(items.stock, items.price)
    kept = state.keep(regions)
    for region in (0, 5, 69):
        kept.region(region)
    rng = np.random.default_rng(1)
    for step in range(30):
        rows = rng.integers(0, len(state.stock), rng.integers(1, 200))
        if step % 3 == 0:
            state.update(rows, stock=rng.integers(0, 3, len(rows)))
        elif step % 3 == 1:
            state.update(rows, available=rng.integers(0, 2, len(rows)))
        else:
            state.update(rows, price=5.0)  # no effect on the kept sets
        for region in (0, 5, 69):
            live, in_region = _brute_counts(regions, state, region)
            assert kept.live_count == live
            assert kept.region(region)[1] == in_region, f"region {region} count after step {step}"
    live = (state.stock > 0) & (state.available != 0)
    np.testing.assert_array_equal(_live_rows(kept), np.flatnonzero(live))
    # The summary marks exactly the live words that hold a row (numpy's oracle).
    words_with_rows = np.unique(np.flatnonzero(live) >> 6)
    np.testing.assert_array_equal(_core.bitset_rows(kept.live_summary), words_with_rows)


def test_a_region_first_asked_after_updates_counts_the_current_state(bundle):
    items = bundle.items
    regions = np.ascontiguousarray(items.regions, dtype=np.uint64)
    state = ItemState.from_arrays(items.stock, items.price)
    kept = state.keep(regions)
    state.update(np.arange(0, 5000), available=0)
    assert kept.region(7)[1] == _brute_counts(regions, state, 7)[1]


def _state(n: int, selectivity: float, far_from: np.ndarray | None, vectors: np.ndarray, seed=0) -> ItemState:
    state = ItemState.from_arrays(np.full(n, 5, np.int32), np.ones(n, np.float32))
    count = max(1, int(selectivity * n))
    if far_from is not None:
        eligible = np.argsort(vectors @ far_from)[:count]  # the rows least like the query
    else:
        eligible = np.random.default_rng(seed).choice(n, count, replace=False)
    mask = np.zeros(n, bool)
    mask[eligible] = True
    state.available[:] = mask
    return state


def _check(hnsw_bundle, state, kept, queries, rules_kwargs=None):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    catalog = open_catalog(n, hnsw_bundle.items.brand, hnsw_bundle.items.category)
    rules = _core.Rules(state.stock, state.price, state.available, 0, NOW + 10**9, **(rules_kwargs or {}))
    eligible = np.flatnonzero(catalog.check_rows(rules, np.arange(n, dtype=np.int64)))
    recalls = []
    for q in queries:
        q = q[None].copy()
        truth = exact_search(vectors, eligible, q, 100)[0]
        got = retrieve(hnsw_bundle.index, vectors, catalog, rules, q, 100, RetrievalConfig(), kept=kept)
        assert np.isin(got.rows, eligible).all(), "an ineligible item was retrieved"
        assert len(got.rows) >= min(100, len(eligible)), "a short page"
        recalls.append(len(np.intersect1d(truth, got.rows[:100])) / max(len(truth), 1))
    return float(np.mean(recalls)), got


def _queries(bundle, count=10):
    users = bundle.users
    return users.vectors[np.flatnonzero(users.has_vector)[:count]]


@pytest.mark.parametrize("selectivity", SELECTIVITIES)
def test_retrieval_over_kept_sets_equals_brute_force(hnsw_bundle, selectivity):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    state = _state(n, selectivity, None, vectors)
    kept = state.keep(np.full((n, 2), ~np.uint64(0), np.uint64))
    recall, got = _check(hnsw_bundle, state, kept, _queries(hnsw_bundle))
    assert recall >= 0.95, f"recall {recall:.3f} at {selectivity}"
    if kept.live_count < RetrievalConfig().graph_min_share * n:
        assert got.strategy == "exact" and recall == 1.0


@pytest.mark.parametrize("selectivity", [0.001, 0.01, 0.05])
def test_retrieval_far_from_the_query_equals_brute_force(hnsw_bundle, selectivity):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    for q in _queries(hnsw_bundle, 3):
        state = _state(n, selectivity, q, vectors)
        kept = state.keep(np.full((n, 2), ~np.uint64(0), np.uint64))
        recall, _ = _check(hnsw_bundle, state, kept, [q])
        assert recall == 1.0


def test_request_rules_combine_with_the_kept_sets(hnsw_bundle):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    state = _state(n, 0.05, None, vectors, seed=4)
    state.price[:] = np.random.default_rng(2).uniform(1, 100, n).astype(np.float32)
    kept = state.keep(np.full((n, 2), ~np.uint64(0), np.uint64))
    brand_ok = np.zeros(hnsw_bundle.items.brand.max() + 1, np.uint8)
    brand_ok[::2] = 1
    excluded = np.flatnonzero(state.available)[::5].astype(np.int64)
    rules = {"price_min": 10.0, "price_max": 60.0, "brand_ok": brand_ok, "excluded": excluded}
    recall, _ = _check(hnsw_bundle, state, kept, _queries(hnsw_bundle, 5), rules)
    assert recall == 1.0


def test_retrieval_sees_live_updates_after_the_sets_were_kept(hnsw_bundle):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    q = _queries(hnsw_bundle, 1)[0]
    state = _state(n, 0.01, None, vectors, seed=9)
    kept = state.keep(np.full((n, 2), ~np.uint64(0), np.uint64))
    _check(hnsw_bundle, state, kept, [q])
    nearest = np.argsort(-(vectors @ q))[:50]
    state.update(nearest, available=1)  # the query's nearest items come on sale ...
    gone = np.flatnonzero(state.available)[:40]
    state.update(gone[~np.isin(gone, nearest)], stock=0)  # ... and some others sell out
    recall, got = _check(hnsw_bundle, state, kept, [q])
    assert recall == 1.0 and np.isin(nearest, got.rows).all()


def test_recommender_pages_follow_updates_at_low_selectivity(bundle):
    items = bundle.items
    n = len(items.stock)
    state = ItemState.from_arrays(np.full(n, 5, np.int32), items.price)
    state.available[:] = 0
    state.available[::200] = 1  # 0.5% on sale
    rec = Recommender(bundle, state)
    shopper = Shopper(vector=tuple(_queries(bundle, 1)[0].tolist()), region=bundle.vocab["regions"][0])
    request = StorefrontRequest(shopper=shopper, page=Page(page_size=20, now=NOW))
    first = rec.storefront(request)
    assert state.kept is not None  # built by that request
    shown = np.asarray(bundle.item_rows(list(first.item_ids)))
    assert state.available[shown].all()
    state.update(shown, available=0)
    second = rec.storefront(request)
    assert not set(second.item_ids) & set(first.item_ids)
    assert state.available[np.asarray(bundle.item_rows(list(second.item_ids)))].all()


def test_kept_sets_of_every_worker_follow_updates_items(tmp_path: Path):
    write_bundle(tmp_path, "v1", n=300)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    writer = SharedItemState(state_dir, load_bundle(tmp_path / "v1"))
    other = SharedItemState(state_dir, load_bundle(tmp_path / "v1"))  # another worker's mapping
    everywhere = np.full((300, 1), ~np.uint64(0), np.uint64)
    kept_w, kept_o = writer.state.keep(everywhere), other.state.keep(everywhere)
    ids = [f"I{i}" for i in range(300)]
    before = kept_o.live_count
    writer.apply([ItemUpdate(ids[3], stock=0), ItemUpdate(ids[4], available=False)])
    writer.apply([ItemUpdate(ids[4], available=True), ItemUpdate(ids[5], stock=0)])
    other.refresh()  # what each worker does before a request
    for state, kept in ((writer.state, kept_w), (other.state, kept_o)):
        live = np.flatnonzero((state.stock > 0) & (state.available != 0))
        np.testing.assert_array_equal(_core.bitset_rows(kept.live), live)
        assert kept.live_count == len(live) == before - 2
        assert kept.region(0)[1] == len(live)


def test_the_live_summary_marks_the_words_that_hold_rows_through_updates():
    n = 10_000
    state = ItemState.from_arrays(np.full(n, 5, np.int32), np.ones(n, np.float32))
    state.available[:] = 0
    state.available[[5, 700, 701, 9_999]] = 1
    kept = state.keep(np.full((n, 1), ~np.uint64(0), np.uint64))
    rng = np.random.default_rng(3)
    for _ in range(50):
        rows = rng.choice(n, 5, replace=False)
        state.update(rows, available=rng.integers(0, 2, 5))
        words_with_rows = np.unique(np.flatnonzero(state.available) >> 6)
        np.testing.assert_array_equal(_core.bitset_rows(kept.live_summary), words_with_rows)
    vectors = np.random.default_rng(4).standard_normal((n, 8)).astype(np.float32)
    catalog = open_catalog(n)
    rules = _core.Rules(state.stock, state.price, state.available, 0, NOW)
    region_rows, _ = kept.region(0)
    q = vectors[0]
    got, _ = catalog.scan_kept(rules, vectors, kept.live, q, 10, region_rows, None, kept.live_summary)
    np.testing.assert_array_equal(got, exact_search(vectors, np.flatnonzero(state.available), q[None], 10)[0])
