"""Rules the docs promise, each against an oracle computed here (numpy eligibility, counts by
launch date, brute-force campaign windows): presale boost and window, new-item cap, SimilarItems
caps, campaign start/end, configured sources, deadline budgets."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from peakrec import Recommender, _core
from peakrec.config import RankingConfig, ServingConfig, to_dict
from peakrec.errors import BundleError
from peakrec.pipeline.request import Budget
from peakrec.pipeline.types import Page, Shopper, SimilarItemsRequest, StorefrontRequest
from reference import eligible_mask
from synthetic import DAY, NOW, synthetic_bundle


def _bundle(config: ServingConfig | None = None, **changes):
    bundle = synthetic_bundle(n_items=6000, n_users=300, dim=32, seed=5)
    for name, values in changes.items():
        column = getattr(bundle.items, name)
        for row, value in values.items():
            column[row] = value
    if config is not None:
        bundle.config = to_dict(config)
    return bundle


def _eligible_rows(bundle, region: int, now: int = NOW) -> np.ndarray:
    items = bundle.items
    ok = eligible_mask(items, items.stock, items.price, np.ones(len(items.ids), np.uint8), region, now)
    return np.flatnonzero(ok & (items.member_only == 0))


def _region_code(bundle, region: int) -> str:
    return bundle.vocab["regions"][region]


def _like(rec: Recommender, row: int, region: int, **page) -> object:
    """A storefront page for a shopper whose vector is item ``row``'s own (so it ranks first)."""
    vector = tuple(float(v) for v in rec.vectors[row])
    shopper = Shopper(region=_region_code(rec.bundle, region), vector=vector)
    return rec.storefront(StorefrontRequest(shopper=shopper, page=Page(now=NOW, explain=True, **page)))


# -- presale --------------------------------------------------------------------------------------


def test_presale_item_in_its_window_gets_the_boost_and_says_presale():
    bundle = _bundle()
    items = bundle.items
    in_window = (items.presale_start != 0) & (items.presale_start <= NOW) & (NOW <= items.presale_end)
    eligible = _eligible_rows(bundle, 0)
    row = int(np.intersect1d(np.flatnonzero(in_window), eligible)[0])
    rec = Recommender(bundle)
    page = _like(rec, row, 0)
    i = page.rows.tolist().index(row)
    assert "presale" in page.reasons[i]
    boosted = Recommender(_bundle(ServingConfig(ranking=RankingConfig(presale_boost=0.0))))
    plain = _like(boosted, row, 0)
    j = plain.rows.tolist().index(row)
    assert "presale" not in plain.reasons[j]
    assert page.scores[i] == pytest.approx(plain.scores[j] + RankingConfig().presale_boost, abs=1e-5)


def test_a_later_presale_window_does_not_hide_an_item_launched_earlier():
    # item 7: launched 100 days ago, presale window for a relaunch 5..10 days ahead
    start, end = NOW + 5 * DAY, NOW + 10 * DAY
    bundle = _bundle(
        launch_ts={7: NOW - 100 * DAY},
        presale_start={7: start},
        presale_end={7: end},
        stock={7: 5},
        member_only={7: 0},
        regions={7: ~np.uint64(0)},
    )
    rec = Recommender(bundle)
    page = _like(rec, 7, 0)
    assert page.rows[0] == 7
    assert 7 in _eligible_rows(bundle, 0)  # the oracle agrees
    # before launch and outside any window an item stays hidden
    hidden = Recommender(
        _bundle(launch_ts={7: NOW + 20 * DAY}, presale_start={7: start}, presale_end={7: end})
    )
    assert 7 not in _like(hidden, 7, 0).rows


# -- new-product incubation -----------------------------------------------------------------------


def _new_share(rec: Recommender, users: list[str], window_days: float) -> tuple[float, int]:
    launch = rec.bundle.items.launch_ts
    worst, relaxed = 0.0, 0
    for user in users:
        page = rec.storefront(
            StorefrontRequest(shopper=Shopper(user_id=user), page=Page(now=NOW, explain=True))
        )
        age = NOW - launch[page.rows]
        new = (age >= 0) & (age <= window_days * DAY)
        worst = max(worst, new.mean())
        relaxed += sum("cap-relaxed" in r for r in page.reasons)
    return worst, relaxed


def test_new_items_never_exceed_their_share_of_a_page():
    # a strong incubation boost: without the cap new items would take most pages
    ranking = RankingConfig(new_item_boost=2.0, new_item_max_share=0.25, max_per_brand=0, max_per_category=0)
    rec = Recommender(_bundle(ServingConfig(ranking=ranking)))
    users = [str(u) for u in rec.bundle.users.ids[:60]]
    worst, relaxed = _new_share(rec, users, ranking.new_item_window_days)
    assert worst <= 0.25 and relaxed == 0
    uncapped = dataclasses.replace(ranking, new_item_max_share=1.0)
    worst_uncapped, _ = _new_share(Recommender(_bundle(ServingConfig(ranking=uncapped))), users, 14)
    assert worst_uncapped > 0.5  # the cap is what holds the share down


# -- SimilarItems ---------------------------------------------------------------------------------


def test_similar_items_keep_the_brand_and_category_caps():
    rec = Recommender(_bundle())
    cfg = rec.config
    items = rec.bundle.items
    relaxed = total = 0
    for row in _eligible_rows(rec.bundle, 0)[:40]:
        item_id = str(items.ids[row])
        request = SimilarItemsRequest(
            item_id=item_id,
            shopper=Shopper(region=_region_code(rec.bundle, 0)),
            page=Page(now=NOW, explain=True),
        )
        page = rec.similar_items(request)
        assert row not in page.rows and len(page.rows) == 20
        capped = np.array(["cap-relaxed" not in r for r in page.reasons])
        assert np.bincount(items.brand[page.rows[capped]]).max() <= cfg.max_per_brand
        assert np.bincount(items.category[page.rows[capped]]).max() <= cfg.max_per_category
        relaxed += int((~capped).sum())
        total += len(page.rows)
    assert relaxed / total < 0.05


# -- campaigns ------------------------------------------------------------------------------------


def test_campaign_boost_applies_between_start_and_end_only():
    bundle = _bundle()
    segments = bundle.vocab["segments"]
    bundle.vocab["campaigns"] = [
        {"id": "always", "segments": [], "boost": 0.1, "start": None, "end": None},
        {"id": "festival", "segments": [], "boost": 0.2, "start": NOW - DAY, "end": NOW + DAY},
        {"id": "later", "segments": [segments[0]], "boost": 0.3, "start": NOW + 2 * DAY, "end": None},
    ]
    ranker = Recommender(bundle).ranker
    for t in (NOW - 2 * DAY, NOW - DAY, NOW, NOW + DAY, NOW + 3 * DAY):
        for seg_bits in (0, 1):
            want = np.array(
                [
                    0.1,
                    0.2 if NOW - DAY <= t < NOW + DAY else 0.0,
                    0.3 if (t >= NOW + 2 * DAY and seg_bits & 1) else 0.0,
                ],
                np.float32,
            )
            np.testing.assert_array_equal(ranker.campaign_boost(seg_bits, t), want)


# -- the pipeline ---------------------------------------------------------------------------------


def test_budget_gives_each_stage_its_share_counted_from_the_start():
    budget = Budget(100.0, 110.0, (0.2, 0.5, 0.3))
    assert budget.resolve_end == pytest.approx(102.0) and budget.sources_end == pytest.approx(107.0)
    assert budget.sources_left(103.0) == pytest.approx(4.0)
    assert Budget(100.0, None, (0.2, 0.5, 0.3)).sources_left(1e9) == float("inf")


def test_only_the_configured_sources_run():
    config = ServingConfig.from_dict({"pipeline": {"storefront": ["ann"]}})
    rec = Recommender(_bundle(config))
    user = str(rec.bundle.users.ids[0])
    page = rec.storefront(StorefrontRequest(shopper=Shopper(user_id=user), page=Page(now=NOW, explain=True)))
    assert len(page.rows) == 20
    assert not any("new-items" in r or "region-popular" in r for r in page.reasons)
    assert set(page.stage_seconds) == {"resolve", "sources", "rank"}


def test_no_time_left_for_sources_answers_the_fallback_degraded():
    rec = Recommender(_bundle())
    user = str(rec.bundle.users.ids[0])
    # 1 ms in all: the sources' share ends before the 0.5 ms minimum a source needs
    page = rec.storefront(
        StorefrontRequest(
            shopper=Shopper(user_id=user),
            page=Page(now=NOW, explain=True, deadline=time.monotonic() + 0.0006),
        )
    )
    assert page.degraded and all(r.startswith("found by fallback") for r in page.reasons)


def test_a_bundle_config_with_an_unknown_key_is_refused_at_load():
    bundle = _bundle()
    bundle.config = {"retrieval": {"max_oversample": 64}}
    with pytest.raises(BundleError, match='unknown key "max_oversample"'):
        Recommender(bundle)


def test_rank_params_refuse_out_of_range_shares():
    with pytest.raises(ValueError, match="new_max_share"):
        _core.RankParams(new_max_share=1.5)
