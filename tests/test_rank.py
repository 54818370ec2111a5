"""The Rust ranking kernel against the numpy reference, and its page rules."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from peakrec import _core
from peakrec.state import ItemState
from reference import filter_rank_brand_cap
from synthetic import NOW


def _candidates(n, count, seed):
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, count, replace=False).astype(np.int64)
    relevance = rng.standard_normal(count).astype(np.float32)
    return rows, relevance


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), cap=st.integers(0, 6), k=st.integers(1, 150), region=st.integers(0, 69))
def test_filter_rank_brand_cap_equals_numpy_reference(recommender, bundle, seed, cap, k, region):
    state = ItemState.from_arrays(bundle.items.stock, bundle.items.price)
    rows, relevance = _candidates(20_000, 1000, seed)
    rules = _core.Rules(state.stock, state.price, state.available, region, NOW)
    got_rows, got_scores, _, _ = recommender.catalog.rank(
        rules,
        rows,
        relevance,
        np.ones(len(rows), np.uint8),
        _core.RankParams(popularity_weight=0.2, max_per_brand=cap),
        page=0,
        page_size=k,
        now=NOW,
    )
    want_rows, want_scores = filter_rank_brand_cap(
        bundle.items,
        state.stock,
        state.price,
        state.available,
        region,
        NOW,
        rows,
        relevance,
        k,
        cap,
        recommender.popularity,
        0.2,
    )
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_array_equal(got_scores, want_scores)


def _rank(recommender, rows, relevance, page=0, page_size=20, campaign_boost=None, **params):
    return recommender.catalog.rank(
        None,
        rows,
        relevance,
        np.ones(len(rows), np.uint8),
        _core.RankParams(**params),
        page=page,
        page_size=page_size,
        now=NOW,
        campaign_boost=campaign_boost,
    )


def test_pages_are_disjoint_and_cover_the_pool_in_order(recommender):
    rows, relevance = _candidates(20_000, 300, 1)
    seen = []
    for page in range(3):
        got = _rank(recommender, rows, relevance, page=page, page_size=40, max_per_brand=8)[0]
        assert len(got) == 40
        seen.extend(got.tolist())
    assert len(set(seen)) == len(seen)


def test_category_and_brand_caps_hold_when_the_pool_is_diverse(recommender, bundle):
    rows, relevance = _candidates(20_000, 1000, 2)
    got, _, reasons, _ = _rank(
        recommender, rows, relevance, page_size=30, max_per_brand=3, max_per_category=2
    )
    assert np.bincount(bundle.items.brand[got]).max() <= 3
    assert np.bincount(bundle.items.category[got]).max() <= 2
    assert not (reasons & _core.REASON_CAP_RELAXED).any()


def test_reserved_new_slots_hold(recommender, bundle):
    rows, relevance = _candidates(20_000, 2000, 3)
    new = (NOW - bundle.items.launch_ts[rows] >= 0) & (NOW - bundle.items.launch_ts[rows] <= 7 * 86_400)
    assert new.sum() >= 5
    relevance[new] -= 100  # new items would never make the page on relevance alone
    got, _, reasons, _ = _rank(
        recommender, rows, relevance, page_size=20, new_window=7 * 86_400, new_reserved_share=0.15
    )
    assert np.isin(got, rows[new]).sum() == 3
    assert ((reasons & _core.REASON_RESERVED) != 0).sum() == 3


def test_new_items_are_capped_at_their_share_of_the_page(recommender, bundle):
    rows, relevance = _candidates(20_000, 2000, 3)
    new = (NOW - bundle.items.launch_ts[rows] >= 0) & (NOW - bundle.items.launch_ts[rows] <= 7 * 86_400)
    assert new.sum() >= 10
    relevance[new] += 100  # new items would fill the page on relevance alone
    got, _, reasons, _ = _rank(
        recommender, rows, relevance, page_size=20, new_window=7 * 86_400, new_boost=0.1, new_max_share=0.25
    )
    assert len(got) == 20
    assert np.isin(got, rows[new]).sum() == 5  # floor(0.25 * 20)
    assert not (reasons & _core.REASON_CAP_RELAXED).any()
    # the oracle: the 5 best new items, then the 15 best others, in score order
    best_new = rows[new][np.argsort(-relevance[new], kind="stable")][:5]
    assert set(got[np.isin(got, rows[new])].tolist()) == set(best_new.tolist())


def test_presale_boost_applies_inside_the_window_only(recommender, bundle):
    items = bundle.items
    rows = np.arange(20_000, dtype=np.int64)
    presale = (
        (items.presale_start[rows] != 0)
        & (items.presale_start[rows] <= NOW)
        & (NOW <= items.presale_end[rows])
    )
    later = items.presale_start[rows] > NOW
    assert presale.any()
    relevance = np.zeros(len(rows), np.float32)
    _, scores, reasons, _ = _rank(recommender, rows, relevance, page_size=len(rows), presale_boost=0.5)
    got_rows = _rank(recommender, rows, relevance, page_size=len(rows), presale_boost=0.5)[0]
    flagged = (reasons & _core.REASON_PRESALE) != 0
    np.testing.assert_array_equal(np.sort(got_rows[flagged]), rows[presale])
    np.testing.assert_allclose(scores[flagged], 0.5)
    assert not np.isin(got_rows[flagged], rows[later]).any()


def test_campaign_boost_lifts_only_targeted_campaigns(recommender, bundle):
    rows, relevance = _candidates(20_000, 500, 4)
    boosts = np.zeros(8, np.float32)
    boosts[2] = 50.0
    got, _, reasons, _ = _rank(recommender, rows, relevance, page_size=5, campaign_boost=boosts)
    in_campaign = (bundle.items.campaigns[got] >> np.uint64(2)) & np.uint64(1)
    assert in_campaign.all()
    assert (reasons & _core.REASON_CAMPAIGN).all()
