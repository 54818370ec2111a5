"""Eligibility bitsets (Rust) against the numpy oracle, over random rules."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from peakrec import _core
from peakrec.state import ItemState
from reference import eligible_mask
from synthetic import DAY, NOW

rules_strategy = st.fixed_dictionaries(
    {
        "region": st.integers(0, 69),
        "now": st.integers(NOW - 40 * DAY, NOW + 40 * DAY),
        "price_min": st.sampled_from([-np.inf, 0.0, 100.0, 250.0]),
        "price_span": st.sampled_from([np.inf, 10.0, 300.0]),
        "brands": st.one_of(st.none(), st.lists(st.integers(0, 199), max_size=20)),
        "categories": st.one_of(st.none(), st.lists(st.integers(0, 59), max_size=10)),
        "members": st.one_of(st.none(), st.lists(st.integers(0, 199), max_size=5)),
        "excluded": st.lists(st.integers(0, 19_999), max_size=50),
    }
)


def _mask(values, size):
    if values is None:
        return None
    m = np.zeros(size, np.uint8)
    m[values] = 1
    return m


def _price_max(r):
    return np.inf if np.isinf(r["price_span"]) else r["price_min"] + r["price_span"]


def _core_rules(state, r):
    excluded = np.unique(np.asarray(r["excluded"], np.int64))
    return _core.Rules(
        state.stock,
        state.price,
        state.available,
        r["region"],
        r["now"],
        r["price_min"],
        _price_max(r),
        _mask(r["brands"], 200),
        _mask(r["categories"], 60),
        _mask(r["members"], 200),
        excluded,
    ), excluded


@settings(max_examples=40, deadline=None)
@given(r=rules_strategy)
def test_bitset_equals_numpy_oracle(recommender, bundle, r):
    state = ItemState.from_arrays(bundle.items.stock, bundle.items.price)
    state.available[::13] = 0
    rules, excluded = _core_rules(state, r)
    words, count = recommender.catalog.eligible(rules)
    expected = eligible_mask(
        bundle.items,
        state.stock,
        state.price,
        state.available,
        r["region"],
        r["now"],
        r["price_min"],
        _price_max(r),
        _mask(r["brands"], 200),
        _mask(r["categories"], 60),
        _mask(r["members"], 200),
        excluded,
    )
    got = np.unpackbits(words.view(np.uint8), bitorder="little", count=len(expected)).astype(bool)
    np.testing.assert_array_equal(got, expected)
    assert count == expected.sum()
    np.testing.assert_array_equal(_core.bitset_rows(words), np.flatnonzero(expected))
    rows = np.arange(0, 20_000, 7, dtype=np.int64)
    np.testing.assert_array_equal(recommender.catalog.check_rows(rules, rows).view(bool), expected[rows])


def test_sample_fraction_estimates_the_eligible_share(recommender, bundle):
    state = ItemState.from_arrays(bundle.items.stock, bundle.items.price)
    rules = _core.Rules(state.stock, state.price, state.available, 3, NOW)
    _, count = recommender.catalog.eligible(rules)
    assert abs(recommender.catalog.sample_fraction(rules, 4096) - count / 20_000) < 0.03


def test_live_state_changes_are_seen_on_the_next_call(recommender, bundle):
    state = ItemState.from_arrays(bundle.items.stock, bundle.items.price)
    rules = _core.Rules(state.stock, state.price, state.available, 3, NOW)
    _, before = recommender.catalog.eligible(rules)
    state.stock[:] = 0
    _, after = recommender.catalog.eligible(rules)
    assert before > 0 and after == 0


def test_region_out_of_range_is_invalid(recommender, bundle):
    import pytest
    from peakrec.errors import InvalidInputError

    state = ItemState.from_arrays(bundle.items.stock, bundle.items.price)
    with pytest.raises(InvalidInputError, match="region"):
        recommender.catalog.eligible(_core.Rules(state.stock, state.price, state.available, 200, NOW))
