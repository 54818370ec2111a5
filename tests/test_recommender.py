"""Recommender: end-to-end properties against the numpy oracle, bad input, deadlines."""

import time

import numpy as np
import peakrec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peakrec.errors import InvalidInputError, NotFoundError
from peakrec.pipeline.types import Filters, Page, Shopper, SimilarItemsRequest, StorefrontRequest
from reference import eligible_mask
from synthetic import DAY, NOW


def _oracle(rec, bundle, shopper, filters, now, extra_excluded=()):
    """Eligible mask of a request, computed independently in numpy."""
    resolver, rules = rec.resolver, rec.rules
    user_row = bundle.user_row(shopper.user_id) if shopper.user_id else -1
    region = resolver.region_of(shopper, user_row)
    members = [resolver.brand_index[b] for b in shopper.member_brands if b in resolver.brand_index]
    excluded = list(extra_excluded)
    if user_row >= 0:
        u = bundle.users
        members += u.memberships[u.memberships_indptr[user_row] : u.memberships_indptr[user_row + 1]].tolist()
        excluded += u.purchased[u.purchased_indptr[user_row] : u.purchased_indptr[user_row + 1]].tolist()
    rows = bundle.item_rows(list(shopper.exclude_items)) if shopper.exclude_items else np.empty(0, np.int64)
    excluded += rows[rows >= 0].tolist()
    member_mask = np.zeros(len(rules.brands), np.uint8)
    member_mask[members] = 1
    brand_ok = None
    if filters.brands_allow or filters.brands_block:
        brand_ok = rules.brand_mask(filters.brands_allow) if filters.brands_allow else np.ones(200, np.uint8)
        brand_ok[rules.brand_mask(filters.brands_block).astype(bool)] = 0
    category_ok = None
    if filters.categories_allow:
        cats = np.asarray(bundle.vocab["categories"])
        category_ok = np.array(
            [any(c == p or c.startswith(p + ">") for p in filters.categories_allow) for c in cats], np.uint8
        )
    state = rec.state
    return eligible_mask(
        bundle.items,
        state.stock,
        state.price,
        state.available,
        region,
        now,
        -np.inf if filters.price_min is None else filters.price_min,
        np.inf if filters.price_max is None else filters.price_max,
        brand_ok,
        category_ok,
        member_mask,
        np.asarray(excluded, np.int64),
    )


requests = st.fixed_dictionaries(
    {
        "user": st.one_of(st.just(""), st.integers(0, 499).map(lambda u: f"U{u:06d}"), st.just("nobody")),
        "region": st.integers(0, 69).map(lambda r: f"R{r:03d}"),
        "brands": st.lists(st.integers(0, 30).map(lambda b: f"brand-{b:03d}"), max_size=3),
        "categories": st.lists(st.sampled_from(["服饰", "数码>c1", "家居>c0>leaf2", "美妆"]), max_size=2),
        "price_max": st.sampled_from([None, 50.0, 400.0]),
        "members": st.lists(st.integers(0, 199).map(lambda b: f"brand-{b:03d}"), max_size=3),
        "exclude": st.lists(st.integers(0, 19_999).map(lambda i: f"I{i:07d}"), max_size=5),
        "recent": st.lists(st.integers(0, 19_999).map(lambda i: f"I{i:07d}"), max_size=3),
        "page": st.integers(0, 2),
        "page_size": st.sampled_from([1, 10, 20, 50]),
        "now": st.integers(NOW - 10 * DAY, NOW + 10 * DAY),
    }
)


@settings(max_examples=60, deadline=None)
@given(r=requests)
def test_storefront_pages_are_eligible_full_capped_and_deterministic(recommender, bundle, r):
    shopper = Shopper(
        user_id=r["user"],
        region=r["region"],
        context={"device": "ios"},
        recent_items=tuple(r["recent"]),
        exclude_items=tuple(r["exclude"]),
        member_brands=tuple(r["members"]),
    )
    filters = Filters(
        brands_allow=tuple(r["brands"]), categories_allow=tuple(r["categories"]), price_max=r["price_max"]
    )
    page = Page(page_size=r["page_size"], page=r["page"], now=r["now"], explain=True)
    req = StorefrontRequest(shopper=shopper, filters=filters, page=page)
    out = recommender.storefront(req)
    ok = _oracle(recommender, bundle, shopper, filters, r["now"])

    assert ok[out.rows].all(), "an ineligible item was returned"
    expected_len = min(r["page_size"], max(0, int(ok.sum()) - r["page"] * r["page_size"]))
    assert len(out.rows) == expected_len, "page not full although enough eligible items exist"
    assert len(set(out.rows.tolist())) == len(out.rows)
    assert out.item_ids == bundle.items.ids[out.rows].tolist()
    assert np.all(np.diff(out.scores) <= 0)
    max_brand, max_category = recommender.config.max_per_brand, recommender.config.max_per_category
    relaxed = np.array(["cap-relaxed" in reason for reason in out.reasons], bool)
    for column, cap in [(bundle.items.brand, max_brand), (bundle.items.category, max_category)]:
        kept = column[out.rows][~relaxed]
        assert len(kept) == 0 or np.unique(kept, return_counts=True)[1].max() <= cap, "cap broken"
    again = recommender.storefront(req)
    np.testing.assert_array_equal(again.rows, out.rows)
    np.testing.assert_array_equal(again.scores, out.scores)


def test_consecutive_pages_never_repeat_an_item(recommender):
    shopper = Shopper(user_id="U000010", region="R002")
    pages = [
        recommender.storefront(StorefrontRequest(shopper=shopper, page=Page(page=p, page_size=20, now=NOW)))
        for p in range(4)
    ]
    rows = np.concatenate([p.rows for p in pages])
    assert len(rows) == 80 and len(np.unique(rows)) == 80


def test_reserved_new_item_slots_are_filled(recommender, bundle):
    shopper = Shopper(user_id="U000011", region="R004")
    out = recommender.storefront(
        StorefrontRequest(shopper=shopper, page=Page(page_size=20, now=NOW, explain=True))
    )
    age = NOW - bundle.items.launch_ts[out.rows]
    new = (age >= 0) & (age <= recommender.config.new_item_window_days * DAY)
    assert new.sum() >= recommender.config.new_slots(20) == 2


def test_unknown_user_is_served_cold_from_features(recommender):
    out = recommender.storefront(
        StorefrontRequest(
            shopper=Shopper(
                user_id="who-knows", region="R001", context={"device": "ios", "segment": "seg-3"}
            ),
            page=Page(now=NOW),
        )
    )
    assert out.cold and not out.degraded and len(out.rows) == 20


def test_nothing_known_serves_region_popular(recommender, bundle):
    out = recommender.storefront(
        StorefrontRequest(shopper=Shopper(context={"region": "R005"}), page=Page(now=NOW, explain=True))
    )
    # Only the region feature is known here, so the hashed vector is used; with no features at all
    # the user's stored region is unavailable, so a region is the minimum a request carries.
    assert out.cold and len(out.rows) == 20
    empty = recommender.fallback(StorefrontRequest(shopper=Shopper(region="R005"), page=Page(now=NOW)))
    assert set(empty.rows.tolist()) <= set(bundle.region_popular[5].tolist())
    assert len(empty.rows) == 20 and not empty.degraded


def test_expired_deadline_returns_the_eligible_fallback_flagged(recommender, bundle):
    shopper = Shopper(user_id="U000012", region="R006")
    out = recommender.storefront(
        StorefrontRequest(shopper=shopper, page=Page(now=NOW, deadline=time.monotonic() - 1, explain=True))
    )
    assert out.degraded and len(out.rows) == 20
    assert all("fallback" in r for r in out.reasons)
    assert _oracle(recommender, bundle, shopper, Filters(), NOW)[out.rows].all()


def test_generous_deadline_is_not_degraded(recommender):
    out = recommender.storefront(
        StorefrontRequest(
            shopper=Shopper(user_id="U000012", region="R006"),
            page=Page(now=NOW, deadline=time.monotonic() + 5),
        )
    )
    assert not out.degraded


def test_similar_items_are_near_eligible_and_exclude_the_item(recommender, bundle):
    req = SimilarItemsRequest(
        item_id="I0000042", shopper=Shopper(region="R003"), page=Page(page_size=10, now=NOW)
    )
    out = recommender.similar_items(req)
    assert 42 not in out.rows.tolist() and len(out.rows) == 10
    ok = _oracle(recommender, bundle, req.shopper, Filters(), NOW, extra_excluded=[42])
    assert ok[out.rows].all()
    v = bundle.items.vectors
    truth = np.flatnonzero(ok)[np.argsort(-(v[ok] @ v[42]), kind="stable")[:30]]
    assert len(np.intersect1d(out.rows, truth)) >= 8  # near neighbours, modulo the diversity caps


def test_explain_names_source_and_boosts(recommender):
    out = recommender.storefront(
        StorefrontRequest(shopper=Shopper(user_id="U000013", region="R001"), page=Page(now=NOW, explain=True))
    )
    assert all(r.startswith("found by ") for r in out.reasons)
    assert out.bundle_version == recommender.version


def test_unknown_exclusions_are_counted_not_errors(recommender):
    out = recommender.storefront(
        StorefrontRequest(
            shopper=Shopper(region="R001", exclude_items=("nope", "I0000001", "also-nope")),
            page=Page(now=NOW),
        )
    )
    assert out.unknown_excluded == 2


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (StorefrontRequest(shopper=Shopper(region="XX")), "shopper.region"),
        (StorefrontRequest(shopper=Shopper()), "shopper.region"),
        (StorefrontRequest(shopper=Shopper(region="R001"), page=Page(page_size=0)), "page.page_size"),
        (StorefrontRequest(shopper=Shopper(region="R001"), page=Page(page_size=1001)), "page.page_size"),
        (StorefrontRequest(shopper=Shopper(region="R001"), page=Page(page=-1)), "page.page"),
        (StorefrontRequest(shopper=Shopper(region="R001", vector=(float("nan"),) * 32)), "shopper.vector"),
        (StorefrontRequest(shopper=Shopper(region="R001", vector=(1.0,) * 3)), "shopper.vector"),
        (
            StorefrontRequest(shopper=Shopper(region="R001"), filters=Filters(price_min=10, price_max=5)),
            "filters.price_min",
        ),
    ],
)
def test_bad_input_raises_invalid_input_naming_the_field(recommender, request_, field):
    with pytest.raises(InvalidInputError, match=field.replace(".", r"\.")):
        recommender.storefront(request_)


def test_unknown_item_for_similar_items_is_not_found(recommender):
    with pytest.raises(NotFoundError, match="item_id"):
        recommender.similar_items(SimilarItemsRequest(item_id="missing", shopper=Shopper(region="R001")))


def test_supplied_vector_is_used(recommender, bundle):
    v = bundle.items.vectors[7]
    out = recommender.storefront(
        StorefrontRequest(
            shopper=Shopper(region="R001", vector=tuple(v.tolist())), page=Page(now=NOW, page_size=5)
        )
    )
    assert not out.cold and len(out.rows) == 5


def test_recommender_is_exported():
    assert peakrec.Recommender is not None


def test_user_look_up_matches_the_bundle(recommender, bundle):
    for user_id in ["U000000", "U000499", "U000250", "U0000001", "nobody", "", "U00049"]:
        assert recommender.resolver.user_row(user_id) == bundle.user_row(user_id)


@settings(max_examples=20, deadline=None)
@given(r=requests)
def test_storefront_under_hnsw_is_eligible_and_full(hnsw_bundle, r):
    rec = _hnsw_recommender(hnsw_bundle)
    shopper = Shopper(
        user_id=r["user"],
        region=r["region"],
        exclude_items=tuple(r["exclude"]),
        member_brands=tuple(r["members"]),
    )
    filters = Filters(brands_allow=tuple(r["brands"]), price_max=r["price_max"])
    page = Page(page_size=r["page_size"], page=r["page"], now=r["now"])
    out = rec.storefront(StorefrontRequest(shopper=shopper, filters=filters, page=page))
    ok = _oracle(rec, hnsw_bundle, shopper, filters, r["now"])
    assert ok[out.rows].all(), "an ineligible item was returned"
    expected_len = min(r["page_size"], max(0, int(ok.sum()) - r["page"] * r["page_size"]))
    assert len(out.rows) == expected_len


_HNSW_RECOMMENDERS: dict = {}


def _hnsw_recommender(bundle):
    if id(bundle) not in _HNSW_RECOMMENDERS:
        _HNSW_RECOMMENDERS[id(bundle)] = peakrec.Recommender(bundle)
    return _HNSW_RECOMMENDERS[id(bundle)]
