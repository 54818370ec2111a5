"""Search end to end in process: the bundle's text files, then ``Recommender.search`` against
brute-force oracles (eligibility from ``reference`` (tests/reference.py), matches from the analyzer run
over every item), bad input, degraded queries, paging and ``peakrec eval search``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import peakrec
import pytest
import reference
from conftest import demo_inputs
from fusion import reciprocal_rank_fusion
from peakrec.cli import main as cli_main
from peakrec.errors import BundleError, InvalidInputError
from peakrec.evaluation.search import mrr_ndcg
from peakrec.pipeline.search import fuse
from peakrec.pipeline.types import Filters, Page, SearchRequest, Shopper
from peakrec.retrieval.text import analyze, analyze_documents
from synthetic import synthetic_bundle

NOW = 1_762_000_000  # inside the demo catalogue's launch dates


@pytest.fixture(scope="module")
def built(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("cfg") / "build.toml"
    text = (demo_dir / "build.toml").read_text(encoding="utf-8")
    config.write_text(text + "\n[text]\nk1 = 0.9\nb = 0.6\nn_features = 4096\n", encoding="utf-8")
    inputs = dict(demo_inputs(demo_dir), config=config)
    return peakrec.build_bundle(**inputs, out=tmp_path_factory.mktemp("bundles"), progress=False)


@pytest.fixture(scope="module")
def bundle(built: Path):
    return peakrec.load_bundle(built)


@pytest.fixture(scope="module")
def rec(bundle) -> peakrec.Recommender:
    return peakrec.Recommender(bundle)


@pytest.fixture(scope="module")
def doc_tokens(bundle) -> list[set[str]]:
    brands = np.asarray(bundle.vocab["brands"])[bundle.items.brand]
    categories = np.asarray(bundle.vocab["categories"])[bundle.items.category]
    return [set(t) for t in analyze_documents(bundle.items.titles, brands, categories)]


def _matches(doc_tokens: list[set[str]], query: str) -> np.ndarray:
    """bool[n]: items sharing at least one token with the query (brute force)."""
    q = set(analyze(query))
    return np.array([bool(q & d) for d in doc_tokens])


def _eligible(rec: peakrec.Recommender, shopper: Shopper, filters: Filters) -> np.ndarray:
    """bool[n] by the numpy reference rules (not the Rust kernels the request path uses)."""
    resolved = rec.resolver.resolve(shopper, None)
    excluded = np.unique(resolved.purchased_rows)
    brand_ok = rec.rules.brand_mask(filters.brands_allow) if filters.brands_allow else None
    category_ok = rec.rules.category_mask(filters.categories_allow) if filters.categories_allow else None
    members = None
    if len(resolved.member_brands):
        members = np.zeros(len(rec.rules.brands), np.uint8)
        members[resolved.member_brands] = 1
    return reference.eligible_mask(
        rec.bundle.items,
        rec.state.stock,
        rec.state.price,
        rec.state.available,
        resolved.region,
        NOW,
        -np.inf if filters.price_min is None else filters.price_min,
        np.inf if filters.price_max is None else filters.price_max,
        brand_ok,
        category_ok,
        members,
        excluded if len(excluded) else None,
    )


def _search(rec, query, shopper=None, filters=None, mode="personalised", **page):
    page = Page(now=NOW, **({"page_size": 10} | page))
    request = SearchRequest(
        query=query, shopper=shopper or Shopper(region="CN-ZJ"), filters=filters or Filters(), page=page
    )
    return rec.search(request, mode=mode)


def test_bundle_holds_checksummed_text_index_and_token_table(built: Path, bundle):
    files = bundle.manifest["files"]
    assert "text/text.json" in files and "text/postings_docs.npy" in files and "text/token_table.npy" in files
    assert bundle.text_index.n_docs == len(bundle.items.ids)
    assert (bundle.text_index.k1, bundle.text_index.b) == (pytest.approx(0.9), pytest.approx(0.6))
    assert bundle.token_table.shape == (4096, bundle.manifest["dimension"])
    assert isinstance(bundle.text_index.arrays["postings_docs"], np.memmap)
    assert bundle.manifest["text"]["token_table"]["n_features"] == 4096


def test_tampered_text_index_is_refused(built: Path, tmp_path: Path):
    copy = Path(shutil.copytree(built, tmp_path / built.name))
    with open(copy / "text" / "postings_tf.npy", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x7f")
    with pytest.raises(BundleError, match="postings_tf"):
        peakrec.load_bundle(copy)


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "x" * 257])
def test_bad_query_is_refused_naming_query(rec, query):
    with pytest.raises(InvalidInputError, match="query"):
        _search(rec, query)


def test_non_string_query_is_refused(rec):
    with pytest.raises(InvalidInputError, match="query"):
        _search(rec, None)


def test_256_characters_are_allowed(rec):
    assert len(_search(rec, "dress " + "x" * 250).item_ids) == 10


SHOPPERS = [
    Shopper(region="CN-ZJ"),
    Shopper(region="BR", context={"device": "android"}),
    Shopper(user_id="u-zj-loyal-01", member_brands=("Nike",)),
]
FILTERS = [
    Filters(),
    Filters(price_max=150.0),
    Filters(categories_allow=("服饰",)),
    Filters(brands_allow=("Nike", "Adidas", "Li-Ning")),
]


@pytest.mark.parametrize("mode", ["bm25", "personalised"])
@pytest.mark.parametrize("shopper", SHOPPERS, ids=["zj", "br-cold", "loyal"])
@pytest.mark.parametrize("filters", FILTERS, ids=["none", "price", "category", "brands"])
def test_search_pages_are_eligible_and_full(rec, doc_tokens, shopper, filters, mode):
    for query in ("连衣裙 floral dress", "running shoes 跑步鞋", "Nike T恤"):
        eligible = _eligible(rec, shopper, filters)
        matches = _matches(doc_tokens, query) & eligible
        got = _search(rec, query, shopper, filters, mode=mode, page_size=20)
        assert eligible[got.rows].all(), "an ineligible item was returned"
        if mode == "bm25":
            assert matches[got.rows].all(), "BM25 returned an item sharing no token with the query"
            assert len(got.rows) == min(20, int(matches.sum()))
        else:  # vector recall fills the page from every eligible item
            assert len(got.rows) == min(20, int(eligible.sum()))
        assert len(set(got.item_ids)) == len(got.item_ids)


def test_bm25_mode_ranks_like_the_text_index_among_eligible(rec, bundle):
    shopper = Shopper(region="CN-ZJ")
    eligible = _eligible(rec, shopper, Filters())
    rows, _ = bundle.text_index.search("真丝 连衣裙", bundle.text_index.n_docs)
    expected = rows[eligible[rows]][:10]
    got = _search(rec, "真丝 连衣裙", shopper, mode="bm25")
    np.testing.assert_array_equal(got.rows, expected)


def test_mixed_script_query_finds_the_matching_items(rec, bundle):
    titles = np.asarray(bundle.items.titles)
    shopper = Shopper(region="CN-ZJ")
    eligible = _eligible(rec, shopper, Filters())
    for query, words in [
        ("连衣裙 floral dress", ("连衣裙", "floral")),
        ("ＮＩＫＥ 跑步鞋", ("Nike", "跑步鞋")),
        ("法式 dress", ("法式", "dress")),
    ]:
        exact = eligible & np.array([all(w in t for w in words) for t in titles])  # brute force
        assert exact.sum() >= 1
        got = _search(rec, query, shopper, mode="fused", explain=True)
        assert len(got.rows) == 10
        head = min(3, int(exact.sum()))
        assert exact[got.rows[:head]].all(), titles[got.rows[:head]]
        assert all(r.startswith("found by bm25") for r in got.reasons[:head]), got.reasons
        # Personalised: the shopper may reorder them, but they stay on the first page.
        mine = _search(rec, query, shopper)
        assert exact[mine.rows].sum() >= min(5, int(exact.sum())), titles[mine.rows]


def test_reasons_name_the_source(rec):
    got = _search(rec, "修身 连衣裙", Shopper(region="CN-ZJ"), explain=True, page_size=50)
    sources = {r.split(";")[0] for r in got.reasons}
    assert sources <= {"found by bm25", "found by vector", "found by bm25+vector"}
    assert "found by bm25+vector" in sources


def test_unknown_tokens_are_degraded_but_full(rec):
    got = _search(rec, "zzqqxxv", Shopper(region="CN-ZJ"), explain=True)
    assert got.degraded and len(got.rows) == 10
    nothing = _search(rec, "!!! ???", Shopper(region="CN-ZJ"), explain=True)
    assert nothing.degraded and len(nothing.rows) == 10
    assert all(r.startswith("found by fallback") for r in nothing.reasons)


def test_known_query_is_not_degraded(rec):
    assert not _search(rec, "连衣裙", Shopper(region="CN-ZJ")).degraded


def test_paging_splits_one_long_page(rec):
    shopper = Shopper(user_id="u-zj-loyal-01")
    whole = _search(rec, "dress 连衣裙", shopper, page_size=20)
    first = _search(rec, "dress 连衣裙", shopper, page_size=10, page=0)
    second = _search(rec, "dress 连衣裙", shopper, page_size=10, page=1)
    assert first.item_ids + second.item_ids == whole.item_ids


def test_personalisation_reorders_by_the_shopper(rec, bundle):
    rng = np.random.default_rng(3)
    d = bundle.manifest["dimension"]
    shoppers = [Shopper(region="CN-ZJ", vector=tuple(rng.normal(size=d).tolist())) for _ in range(6)]
    pages = {tuple(_search(rec, "dress", s).item_ids) for s in shoppers}
    plain = {tuple(_search(rec, "dress", s, mode="fused").item_ids) for s in shoppers}
    assert len(pages) > 1  # personalised pages differ by shopper
    assert len(plain) == 1  # fused ignores the shopper's vector (same eligibility for all six)


def test_mrr_ndcg_by_hand():
    assert mrr_ndcg(["a", "b", "c"], frozenset({"b"}), 10) == (0.5, pytest.approx(1 / np.log2(3)))
    assert mrr_ndcg(["a", "b"], frozenset({"z"}), 10) == (0.0, 0.0)
    assert mrr_ndcg(["a", "b"], frozenset({"a", "b"}), 10) == (1.0, pytest.approx(1.0))


def test_eval_search_command(built: Path, demo_dir: Path, capsys):
    code = cli_main(
        ["eval", "search", str(built), "--queries", str(demo_dir / "queries.jsonl"), "--limit", "30"]
        + ["--json", "--quiet"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["queries"] + out["skipped"] == 30 and out["queries"] > 0
    modes = out["modes"]
    assert set(modes) == {"bm25", "vector", "fused", "personalised"}
    assert all(0 <= m["mrr@10"] <= 1 and 0 <= m["ndcg@10"] <= 1 for m in modes.values())
    assert modes["bm25"]["mrr@10"] > 0.5  # the queries name brand, attribute and category


def test_eval_search_bad_queries_file(built: Path, tmp_path: Path, capsys):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "dress", "targets": "i1"}\n')
    assert cli_main(["eval", "search", str(built), "--queries", str(bad), "--quiet"]) == 1
    assert 'q.jsonl line 1: "targets"' in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(5))
def test_fuse_equals_reciprocal_rank_fusion(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(500, rng.integers(0, 80), replace=False)
    b = np.concatenate([a[: rng.integers(0, len(a) + 1)], rng.choice(500, 30, replace=False)])
    b = b[np.sort(np.unique(b, return_index=True)[1])]  # distinct, order kept
    rows, scores, found_in = fuse([a, b], [1.0, 0.3], 60.0)
    want_rows, want_scores = reciprocal_rank_fusion([a, b], k=60.0, weights=[1.0, 0.3])
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    np.testing.assert_array_equal((found_in & 1) != 0, np.isin(rows, a))
    np.testing.assert_array_equal((found_in & 2) != 0, np.isin(rows, b))


def test_bundle_without_text_index_refuses_search_by_name():
    plain = peakrec.Recommender(synthetic_bundle(n_items=500, n_users=10, dim=8, seed=1))  # no text/
    request = SearchRequest(query="dress", shopper=Shopper(user_id="nobody", region="CN"))
    with pytest.raises(BundleError, match="text index"):
        plain.search(request)


def test_unknown_mode_is_refused(rec):
    with pytest.raises(InvalidInputError, match="mode"):
        _search(rec, "dress", mode="magic")


FESTIVAL = 1_794_326_400  # 2026-11-11 00:00 Beijing: the demo's campaigns run, its new items are new


def test_search_applies_the_member_term_as_storefront_does(rec, bundle):
    nike = bundle.vocab["brands"].index("Nike")
    member = Shopper(region="CN-ZJ", member_brands=("Nike",))
    got = _search(rec, "Nike", member, explain=True, page_size=20)
    is_nike = bundle.items.brand[got.rows] == nike
    assert is_nike.any()
    assert all("member" in r for r, n in zip(got.reasons, is_nike) if n)
    plain = _search(rec, "Nike", Shopper(region="CN-ZJ"), explain=True, page_size=20)
    assert not any("member" in r for r in plain.reasons)
    # the term is the storefront's: member_boost on the text relevance (text-only modes leave it out)
    text_only = _search(rec, "Nike", member, mode="fused", explain=True, page_size=20)
    assert not any("member" in r for r in text_only.reasons)


def test_search_applies_campaign_and_new_terms_at_festival_time(rec, bundle):
    shopper = Shopper(region="CN-ZJ")
    page = Page(now=FESTIVAL, page_size=50, explain=True)
    got = rec.search(SearchRequest(query="连衣裙 dress", shopper=shopper, page=page))
    terms = ";".join(got.reasons)
    assert "campaign" in terms  # double11-main is aimed at everyone and runs then
    assert "new" in terms  # the demo's festival launches are inside the new-item window
    by_id = {c["id"]: i for i, c in enumerate(bundle.vocab["campaigns"])}
    double11 = np.uint64(1) << np.uint64(by_id["double11-main"])
    # after the festival the double-11 campaign has ended: none of its items say campaign any more
    after = rec.search(
        SearchRequest(
            query="连衣裙 dress",
            shopper=shopper,
            page=Page(now=FESTIVAL + 30 * 86_400, page_size=50, explain=True),
        )
    )
    only_double11 = [
        ("campaign" in r)
        for r, row in zip(after.reasons, after.rows)
        if bundle.items.campaigns[row] == double11
    ]
    assert only_double11 and not any(only_double11)
