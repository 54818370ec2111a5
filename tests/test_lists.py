"""Inverted lists (issue 14's middle plan): the partition is each row's best centroid, and probing
the lists over kept sets equals brute force over the eligible rows, including far from the query,
after live updates and under request rules; a bundle carries its lists and measured plan."""

from __future__ import annotations

import json
from types import SimpleNamespace

import faiss
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
def listed(hnsw_bundle):
    """The 20k-item catalogue renumbered list by list, as a build does: vectors, brands and
    categories in list order, an HNSW index over them, the lists, and the original order."""
    vectors = np.ascontiguousarray(hnsw_bundle.items.vectors)
    centroids, offsets, order = build_lists(vectors)
    vectors = np.ascontiguousarray(vectors[order])
    index = faiss.index_factory(vectors.shape[1], "HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    core = _core.InvertedLists(centroids, offsets, len(vectors))
    users = hnsw_bundle.users
    calibration = users.vectors[np.flatnonzero(users.has_vector)[-64:]]
    lists = ItemLists(core, tuple(measure_factors(core, vectors, calibration, K, 0.97)))
    brand, category = hnsw_bundle.items.brand[order], hnsw_bundle.items.category[order]
    return SimpleNamespace(
        vectors=vectors, index=index, brand=brand, category=category, lists=lists,
        centroids=centroids, offsets=offsets, order=order, users=users,
    )  # fmt: skip


def _queries(bundle, count=10):
    users = bundle.users
    return users.vectors[np.flatnonzero(users.has_vector)[:count]]


def _state(n, eligible) -> ItemState:
    state = ItemState.from_arrays(np.full(n, 5, np.int32), np.ones(n, np.float32))
    state.available[:] = 0
    state.available[eligible] = 1
    return state


def _check(world, state, queries, rules_kwargs=None, need=K):
    """Mean recall@need against brute force over the eligible rows; every page full and eligible."""
    vectors = world.vectors
    n = len(vectors)
    catalog = open_catalog(n, world.brand, world.category)
    rules = _core.Rules(state.stock, state.price, state.available, 0, NOW, **(rules_kwargs or {}))
    eligible = np.flatnonzero(catalog.check_rows(rules, np.arange(n, dtype=np.int64)))
    kept = state.keep(np.full((n, 2), ~np.uint64(0), np.uint64))
    half = vectors.astype(np.float16).view(np.uint16)
    recalls, strategies = [], set()
    for q in queries:
        q = q[None].astype(np.float32)
        truth = exact_search(vectors, eligible, q, need)[0]
        got = retrieve(
            world.index,
            vectors,
            catalog,
            rules,
            q,
            need,
            LISTS_EVERYWHERE,
            kept=kept,
            lists=world.lists,
            half=half,
        )
        assert np.isin(got.rows, eligible).all(), "an ineligible item was retrieved"
        assert len(got.rows) >= min(need, len(eligible)), "a short page"
        recalls.append(len(np.intersect1d(truth, got.rows)) / max(len(truth), 1))
        strategies.add(got.strategy)
    return float(np.mean(recalls)), strategies


def test_every_row_is_listed_once_under_its_best_centroid(listed):
    np.testing.assert_array_equal(np.sort(listed.order), np.arange(len(listed.vectors)))
    best = np.argmax(listed.vectors @ listed.centroids.T, axis=1)  # numpy's argmax, the oracle
    for list_no in range(len(listed.centroids)):
        rows = slice(listed.offsets[list_no], listed.offsets[list_no + 1])
        assert (best[rows] == list_no).all()
        assert (np.diff(listed.order[rows]) > 0).all(), "input order kept within a list"


@pytest.mark.parametrize("share", [0.3, 0.8, 1.0])
def test_probing_the_lists_equals_brute_force(listed, share):
    n = len(listed.vectors)
    eligible = np.flatnonzero(np.random.default_rng(3).random(n) < share)
    recall, strategies = _check(listed, _state(n, eligible), _queries(listed))
    assert strategies == {"lists"}
    assert recall >= 0.95, f"recall {recall:.3f} at {share}"


@pytest.mark.parametrize("share", [0.02, 0.1])
def test_rows_far_from_the_query_are_scanned_not_missed(listed, share):
    vectors = listed.vectors
    n = len(vectors)
    for q in _queries(listed, 3):
        eligible = np.argsort(vectors @ q)[: int(share * n)]  # the rows least like the query
        recall, strategies = _check(listed, _state(n, eligible), [q])
        assert recall == 1.0 and strategies == {"exact"}  # the probe gave up and scanned them


def test_request_rules_combine_with_the_lists(listed):
    n = len(listed.vectors)
    state = _state(n, np.flatnonzero(np.random.default_rng(4).random(n) < 0.8))
    state.price[:] = np.random.default_rng(2).uniform(1, 100, n).astype(np.float32)
    brand_ok = np.zeros(listed.brand.max() + 1, np.uint8)
    brand_ok[::2] = 1
    excluded = np.flatnonzero(state.available)[::5].astype(np.int64)
    rules = {"price_min": 10.0, "price_max": 80.0, "brand_ok": brand_ok, "excluded": excluded}
    recall, strategies = _check(listed, state, _queries(listed, 5), rules)
    assert strategies == {"lists"}
    assert recall >= 0.95


def test_the_lists_see_live_updates_after_the_sets_were_kept(listed):
    vectors = listed.vectors
    n = len(vectors)
    q = _queries(listed, 1)[0]
    state = _state(n, np.flatnonzero(np.random.default_rng(9).random(n) < 0.8))
    _check(listed, state, [q])  # keeps the sets
    nearest = np.argsort(-(vectors @ q))[:K]
    state.update(nearest, available=1)  # the query's nearest items come on sale ...
    recall, strategies = _check(listed, state, [q])
    assert strategies == {"lists"} and recall == 1.0
    state.update(nearest[::2], stock=0)  # ... and half of them sell out
    recall, _ = _check(listed, state, [q])
    assert recall >= 0.9


def test_malformed_lists_are_refused_with_the_reason():
    centroids = np.zeros((2, 4), np.float32)
    with pytest.raises(InvalidInputError, match="offsets run from 0 to 7, the catalogue's rows from 0 to 5"):
        _core.InvertedLists(centroids, np.array([0, 2, 7], np.int64), 5)
    with pytest.raises(InvalidInputError, match="offsets must not fall"):
        _core.InvertedLists(np.zeros((3, 4), np.float32), np.array([0, 3, 1, 5], np.int64), 5)
    with pytest.raises(InvalidInputError, match="centroid values for 3 lists"):
        _core.InvertedLists(centroids, np.array([0, 1, 2, 5], np.int64), 5)


def test_factors_rise_with_the_share_and_meet_the_target(listed):
    factors = listed.lists.factors
    assert [s for s, _ in factors] == sorted(s for s, _ in factors)
    assert all(f in FACTORS for _, f in factors)
    assert listed.lists.factor(0.0) == factors[0][1] and listed.lists.factor(factors[-1][0]) == factors[-1][1]
    (s0, f0), (s1, f1) = factors[:2]
    assert min(f0, f1) <= listed.lists.factor((s0 * s1) ** 0.5) <= max(f0, f1)


def test_no_probe_past_the_share_where_no_factor_held_recall(listed):
    lists = ItemLists(listed.lists.lists, ((0.01, 8), (0.1, 64), (0.3, None)))
    assert lists.factor(0.05) is not None and lists.factor(0.2) is None and lists.factor(0.5) is None
    n = 20_000
    assert lists.target(int(0.2 * n), n, 5) is None
    assert lists.target(int(0.05 * n), n, 5) == lists.factor(0.05) * 5
    assert lists.target(int(0.05 * n), n, 100) is None  # a quarter of the kept rows: scan them


def test_a_large_enough_bundle_carries_its_lists_and_plan(demo_dir, tmp_path):
    config = tmp_path / "build.toml"
    config.write_text("[index]\nlists_min_items = 100\n")
    path = peakrec.build_bundle(
        **{**demo_inputs(demo_dir), "config": config}, out=tmp_path / "b", progress=False
    )
    bundle = peakrec.load_bundle(path)
    info = bundle.manifest["lists"]
    assert bundle.lists is not None and len(bundle.lists.lists) == info["count"]
    # Rows are renumbered list by list, and every column follows its item.
    with open(demo_dir / "items.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    rows = bundle.item_rows([r["item_id"] for r in records])
    assert not np.array_equal(rows, np.arange(len(records)))
    vectors = np.asarray(bundle.items.vectors)
    np.testing.assert_array_equal(vectors[rows], np.load(demo_dir / "item_vectors.npy"))
    assert [bundle.items.titles[row] for row in rows[:50]] == [r["title"] for r in records[:50]]
    centroids, offsets = np.load(path / "lists/centroids.npy"), np.load(path / "lists/offsets.npy")
    best = np.argmax(vectors @ centroids.T, axis=1)
    assert all((best[offsets[i] : offsets[i + 1]] == i).all() for i in range(len(centroids)))
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
