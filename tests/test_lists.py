"""Inverted lists (issue 14's middle plan): the partition is each row's best centroid, and probing
the lists over kept sets equals brute force over the eligible rows, including far from the query,
after live updates and under request rules; a bundle carries its lists and measured plan."""

from __future__ import annotations

import numpy as np
import peakrec
import pytest
from conftest import demo_inputs
from peakrec import Recommender, _core
from peakrec.config import RetrievalConfig
from peakrec.errors import InvalidInputError
from peakrec.pipeline.types import Page, Shopper, StorefrontRequest
from peakrec.retrieval.lists import FACTORS, ItemLists, build_lists, measure_factors
from peakrec.retrieval.search import exact_search, retrieve
from peakrec.state import ItemState
from synthetic import NOW, open_catalog

K = 5  # small pages, so that the probe (not the scan) serves shares of a 20k catalogue
# Thresholds that hand every share above 0.1% to the lists.
LISTS_EVERYWHERE = RetrievalConfig(scan_max_share=0.001, lists_max_share=1.01)


@pytest.fixture(scope="module")
def lists(hnsw_bundle):
    vectors = np.ascontiguousarray(hnsw_bundle.items.vectors)
    arrays = build_lists(vectors)
    core = _core.InvertedLists(*arrays, len(vectors))
    users = hnsw_bundle.users
    calibration = users.vectors[np.flatnonzero(users.has_vector)[-64:]]
    return arrays, ItemLists(core, tuple(measure_factors(core, vectors, calibration, K, 0.97)))


def _queries(bundle, count=10):
    users = bundle.users
    return users.vectors[np.flatnonzero(users.has_vector)[:count]]


def _state(n, eligible) -> ItemState:
    state = ItemState.from_arrays(np.full(n, 5, np.int32), np.ones(n, np.float32))
    state.available[:] = 0
    state.available[eligible] = 1
    return state


def _check(bundle, lists, state, queries, rules_kwargs=None, need=K):
    """Mean recall@need against brute force over the eligible rows; every page full and eligible."""
    vectors = bundle.items.vectors
    n = len(vectors)
    catalog = open_catalog(n, bundle.items.brand, bundle.items.category)
    rules = _core.Rules(state.stock, state.price, state.available, 0, NOW, **(rules_kwargs or {}))
    eligible = np.flatnonzero(catalog.check_rows(rules, np.arange(n, dtype=np.int64)))
    kept = state.keep(np.full((n, 2), ~np.uint64(0), np.uint64))
    recalls, strategies = [], set()
    for q in queries:
        q = q[None].astype(np.float32)
        truth = exact_search(vectors, eligible, q, need)[0]
        got = retrieve(
            bundle.index, vectors, catalog, rules, q, need, LISTS_EVERYWHERE, kept=kept, lists=lists
        )
        assert np.isin(got.rows, eligible).all(), "an ineligible item was retrieved"
        assert len(got.rows) >= min(need, len(eligible)), "a short page"
        recalls.append(len(np.intersect1d(truth, got.rows)) / max(len(truth), 1))
        strategies.add(got.strategy)
    return float(np.mean(recalls)), strategies


def test_every_row_is_listed_once_under_its_best_centroid(hnsw_bundle, lists):
    (centroids, offsets, rows), _ = lists
    vectors = hnsw_bundle.items.vectors
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(vectors)))
    best = np.argmax(vectors @ centroids.T, axis=1)  # numpy's argmax, the oracle
    for list_no in range(len(centroids)):
        listed = rows[offsets[list_no] : offsets[list_no + 1]]
        assert (np.diff(listed) > 0).all(), "rows ascend within a list"
        assert (best[listed] == list_no).all()


@pytest.mark.parametrize("share", [0.3, 0.8, 1.0])
def test_probing_the_lists_equals_brute_force(hnsw_bundle, lists, share):
    n = len(hnsw_bundle.items.vectors)
    eligible = np.flatnonzero(np.random.default_rng(3).random(n) < share)
    recall, strategies = _check(hnsw_bundle, lists[1], _state(n, eligible), _queries(hnsw_bundle))
    assert strategies == {"lists"}
    assert recall >= 0.95, f"recall {recall:.3f} at {share}"


@pytest.mark.parametrize("share", [0.02, 0.1])
def test_rows_far_from_the_query_are_scanned_not_missed(hnsw_bundle, lists, share):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    for q in _queries(hnsw_bundle, 3):
        eligible = np.argsort(vectors @ q)[: int(share * n)]  # the rows least like the query
        recall, strategies = _check(hnsw_bundle, lists[1], _state(n, eligible), [q])
        assert recall == 1.0 and strategies == {"exact"}  # the probe gave up and scanned them


def test_request_rules_combine_with_the_lists(hnsw_bundle, lists):
    n = len(hnsw_bundle.items.vectors)
    state = _state(n, np.flatnonzero(np.random.default_rng(4).random(n) < 0.8))
    state.price[:] = np.random.default_rng(2).uniform(1, 100, n).astype(np.float32)
    brand_ok = np.zeros(hnsw_bundle.items.brand.max() + 1, np.uint8)
    brand_ok[::2] = 1
    excluded = np.flatnonzero(state.available)[::5].astype(np.int64)
    rules = {"price_min": 10.0, "price_max": 80.0, "brand_ok": brand_ok, "excluded": excluded}
    recall, strategies = _check(hnsw_bundle, lists[1], state, _queries(hnsw_bundle, 5), rules)
    assert strategies == {"lists"}
    assert recall >= 0.95


def test_the_lists_see_live_updates_after_the_sets_were_kept(hnsw_bundle, lists):
    vectors = hnsw_bundle.items.vectors
    n = len(vectors)
    q = _queries(hnsw_bundle, 1)[0]
    state = _state(n, np.flatnonzero(np.random.default_rng(9).random(n) < 0.8))
    _check(hnsw_bundle, lists[1], state, [q])  # keeps the sets
    nearest = np.argsort(-(vectors @ q))[:K]
    state.update(nearest, available=1)  # the query's nearest items come on sale ...
    recall, strategies = _check(hnsw_bundle, lists[1], state, [q])
    assert strategies == {"lists"} and recall == 1.0
    state.update(nearest[::2], stock=0)  # ... and half of them sell out
    recall, _ = _check(hnsw_bundle, lists[1], state, [q])
    assert recall >= 0.9


def test_malformed_lists_are_refused_with_the_reason():
    centroids = np.zeros((2, 4), np.float32)
    with pytest.raises(InvalidInputError, match="row 7 is outside the catalogue's 5 items"):
        _core.InvertedLists(centroids, np.array([0, 2, 3], np.int64), np.array([0, 7, 1], np.int32), 5)
    with pytest.raises(InvalidInputError, match="offsets must not fall"):
        _core.InvertedLists(
            np.zeros((3, 4), np.float32), np.array([0, 2, 1, 3], np.int64), np.arange(3, dtype=np.int32), 5
        )
    with pytest.raises(InvalidInputError, match="centroid values for 3 lists"):
        _core.InvertedLists(centroids, np.array([0, 1, 2, 3], np.int64), np.arange(3, dtype=np.int32), 5)


def test_factors_rise_with_the_share_and_meet_the_target(hnsw_bundle, lists):
    factors = lists[1].factors
    assert [s for s, _ in factors] == sorted(s for s, _ in factors)
    assert all(f in FACTORS for _, f in factors)
    assert lists[1].factor(0.0) == factors[0][1] and lists[1].factor(2.0) == factors[-1][1]


def test_a_large_enough_bundle_carries_its_lists_and_plan(demo_dir, tmp_path):
    config = tmp_path / "build.toml"
    config.write_text("[index]\nlists_min_items = 100\n")
    path = peakrec.build_bundle(
        **{**demo_inputs(demo_dir), "config": config}, out=tmp_path / "b", progress=False
    )
    bundle = peakrec.load_bundle(path)
    info = bundle.manifest["lists"]
    assert bundle.lists is not None and len(bundle.lists.lists) == info["count"]
    assert 0 < info["plan"]["scan_max_share"] <= info["plan"]["lists_max_share"] <= 1.01
    n = len(bundle.items.stock)
    state = ItemState.from_arrays(np.full(n, 5, np.int32), bundle.items.price)
    state.available[:] = np.random.default_rng(1).random(n) < 0.3
    rec = Recommender(bundle, state)
    assert rec.retrieval.scan_max_share == info["plan"]["scan_max_share"]
    users = bundle.users
    shopper = Shopper(
        vector=tuple(users.vectors[np.flatnonzero(users.has_vector)[0]].tolist()),
        region=bundle.vocab["regions"][0],
    )
    page = rec.storefront(StorefrontRequest(shopper=shopper, page=Page(page_size=20, now=NOW)))
    rows = bundle.item_rows(list(page.item_ids))
    assert len(rows) == 20 and state.available[rows].all()
