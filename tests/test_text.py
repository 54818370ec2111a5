"""Text search: analyzer, BM25 scores against a reference written here, pruning, save/load, errors."""

import math
import unicodedata
from collections import Counter

import numpy as np
import pytest
from fusion import reciprocal_rank_fusion
from hypothesis import given, settings
from hypothesis import strategies as st
from peakrec import FeatureHasher
from peakrec.errors import BundleError, InvalidInputError
from peakrec.retrieval.text import (
    TextIndex,
    analyze,
    analyze_document,
    analyze_documents,
    fit_token_table,
    query_vector,
)

# --- an independent reference: tokenizer and BM25 written from the spec -------------------------

CJK_BLOCKS = [
    (0x1100, 0x11FF),
    (0x3040, 0x309F),
    (0x30A0, 0x30FF),
    (0x3130, 0x318F),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xA960, 0xA97F),
    (0xAC00, 0xD7FF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3134F),
]


def ref_is_cjk(c):
    return c.isalnum() and any(lo <= ord(c) <= hi for lo, hi in CJK_BLOCKS)


def ref_tokens(text):
    text = unicodedata.normalize("NFKC", text).lower()
    out, word, run = [], "", ""

    def flush_run():
        if len(run) == 1:
            out.append(run)
        out.extend(run[i : i + 2] for i in range(len(run) - 1))

    for c in text:
        if ref_is_cjk(c):
            if word:
                out.append(word)
            word, run = "", run + c
        elif c.isalnum():
            flush_run()
            word, run = word + c, ""
        else:
            if word:
                out.append(word)
            flush_run()
            word, run = "", ""
    if word:
        out.append(word)
    flush_run()
    return out


def ref_document(title, brand="", category=""):
    tokens = ref_tokens(title)
    brand = " ".join(unicodedata.normalize("NFKC", brand).lower().split())
    if brand:
        tokens += ref_tokens(brand) + ["brand:" + brand]
    for part in unicodedata.normalize("NFKC", category).lower().split(">"):
        part = " ".join(part.split())
        if part:
            tokens += ref_tokens(part) + ["cat:" + part]
    return tokens


def ref_bm25(docs, query, k1=1.2, b=0.75):
    """Scores float64[n] of every document for the distinct query tokens (Lucene idf)."""
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    scores = np.zeros(n)
    for term in set(query):
        if df[term] == 0:
            continue
        idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(term)
            if tf:
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avg))
    return scores


TITLES = [
    "夏季新款 红色连衣裙 女",
    "Red summer dress, floral",
    "连衣裙 red dress 长款",
    "Nike Air Zoom 跑步鞋 男",
    "ＮＩＫＥ running shoes",
    "iPhone15 手机壳 透明",
    "裙",
    "ワンピース 夏 ドレス",
    "원피스 여름 드레스",
    "blue denim jacket 牛仔外套",
    "red red red shoes",
    "Adidas 连衣裙 运动",
]
BRANDS = ["", "", "", "Nike", "Nike", "Apple", "", "", "", "Levi's", "", "Adidas"]
CATEGORIES = [
    "服饰>女装>连衣裙",
    "服饰>女装>连衣裙",
    "服饰>女装>连衣裙",
    "鞋>跑鞋",
    "鞋>跑鞋",
    "数码>手机配件",
    "服饰>女装",
    "服饰>女装>连衣裙",
    "服饰>女装>连衣裙",
    "服饰>男装>外套",
    "鞋",
    "服饰>女装>连衣裙",
]


@pytest.fixture(scope="module")
def index():
    return TextIndex.build(TITLES, BRANDS, CATEGORIES, k1=1.2, b=0.75)


def ref_docs():
    return [ref_document(t, b, c) for t, b, c in zip(TITLES, BRANDS, CATEGORIES, strict=True)]


def assert_matches_reference(index, query, docs, k1=1.2, b=0.75):
    expected = ref_bm25(docs, ref_tokens(query), k1, b)
    rows, scores = index.search(query, len(docs))
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    assert sorted(rows.tolist()) == np.flatnonzero(expected > 0).tolist()
    np.testing.assert_allclose(scores, expected[rows], rtol=1e-5)
    return rows, scores


# --- analyzer -----------------------------------------------------------------------------------


def test_analyzer_agrees_with_the_reference_tokenizer():
    for title, brand, category in zip(TITLES, BRANDS, CATEGORIES, strict=True):
        assert analyze_document(title, brand, category) == ref_document(title, brand, category)
    assert analyze_documents(TITLES, BRANDS, CATEGORIES) == ref_docs()


def test_cjk_runs_become_bigrams_and_a_lone_character_a_unigram():
    assert analyze("红色连衣裙") == ["红色", "色连", "连衣", "衣裙"]
    assert analyze("裙") == ["裙"]
    assert analyze("连衣裙red dress") == ["连衣", "衣裙", "red", "dress"]


def test_fullwidth_latin_is_folded_to_ascii():
    assert analyze("ＮＩＫＥ") == ["nike"]


def test_brand_and_category_become_field_tokens():
    tokens = analyze_document("Air Zoom", "Nike", "鞋>跑鞋")
    assert "brand:nike" in tokens and "cat:鞋" in tokens and "cat:跑鞋" in tokens
    assert analyze("brand:Nike 跑鞋") == ["brand:nike", "跑鞋"]


# --- BM25 scores --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["连衣裙 red dress", "red", "ＮＩＫＥ 跑鞋", "裙", "ドレス", "여름", "dress 夏"]
)
def test_scores_equal_the_reference_bm25(index, query):
    assert_matches_reference(index, query, ref_docs())


def test_mixed_script_query_ranks_the_item_matching_both_scripts_first(index):
    rows, _ = assert_matches_reference(index, "连衣裙 red dress", ref_docs())
    assert rows[0] == 2  # "连衣裙 red dress 长款"


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (2.0, 1.0), (1.2, 0.0)])
def test_k1_and_b_are_honoured(k1, b):
    index = TextIndex.build(TITLES, BRANDS, CATEGORIES, k1=k1, b=b)
    assert_matches_reference(index, "red dress 连衣裙", ref_docs(), k1, b)


def test_fullwidth_query_matches_ascii_title(index):
    rows, _ = index.search("ＮＩＫＥ", 10)
    assert set(rows.tolist()) == {3, 4}
    rows_field, _ = index.search("brand:nike", 10)
    assert set(rows_field.tolist()) == {3, 4}


def test_equal_scores_are_ordered_by_row():
    index = TextIndex.build(["red dress", "blue shirt", "red dress", "red dress"])
    rows, scores = index.search("red", 10)
    assert rows.tolist() == [0, 2, 3] and scores[0] == scores[1] == scores[2]
    assert index.search("red", 2)[0].tolist() == [0, 2]


def test_numpy_string_columns_are_accepted():
    index = TextIndex.build(np.array(TITLES), np.array(BRANDS), np.array(CATEGORIES))
    assert index.n_docs == len(TITLES)


def test_top_n_beyond_the_catalogue_returns_every_match(index):
    rows, _ = index.search("red", 10**12)
    assert sorted(rows.tolist()) == [1, 2, 10]


def test_query_without_known_tokens_returns_nothing(index):
    rows, scores = index.search("zzz 無", 5)
    assert rows.shape == (0,) and rows.dtype == np.int64 and scores.dtype == np.float32
    assert index.search("!!!", 5)[0].size == 0


WORDS = [
    "red",
    "dress",
    "shoe",
    "Nike",
    "ＮＩＫＥ",
    "连衣裙",
    "红色",
    "裙",
    "手机壳",
    "ドレス",
    "a",
    "b",
    "c",
]


@settings(max_examples=60, deadline=None)
@given(
    titles=st.lists(st.lists(st.sampled_from(WORDS), max_size=7).map(" ".join), min_size=1, max_size=60),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    top_n=st.integers(1, 25),
    k1=st.floats(0.1, 3.0),
    b=st.floats(0.0, 1.0),
)
def test_pruned_top_n_equals_exhaustive_top_n(titles, query, top_n, k1, b):
    index = TextIndex.build(titles, k1=k1, b=b)
    rows, scores = index.search(query, top_n)
    all_rows, all_scores = index.search(query, top_n, exhaustive=True)
    np.testing.assert_array_equal(rows, all_rows)
    np.testing.assert_array_equal(scores, all_scores)
    # and the kept rows are the reference's best
    expected = ref_bm25([ref_tokens(t) for t in titles], ref_tokens(query), np.float32(k1), np.float32(b))
    np.testing.assert_allclose(scores, expected[rows], rtol=1e-5)
    dropped = np.setdiff1d(np.flatnonzero(expected > 0), rows)
    if len(rows) and len(dropped):
        assert expected[dropped].max() <= scores[-1] * (1 + 1e-5)
    assert len(rows) == min(top_n, int((expected > 0).sum()))


def test_pruned_equals_exhaustive_on_a_corpus_with_many_blocks_per_term():
    # Zipf-distributed words over 6,000 titles: common terms span dozens of 128-posting blocks.
    rng = np.random.default_rng(7)
    words = np.array([f"w{i}" for i in range(300)] + [chr(0x4E00 + i) for i in range(60)])
    p = 1.0 / np.arange(1, len(words) + 1)
    picks = rng.choice(len(words), size=(6000, 8), p=p / p.sum())
    lengths = rng.integers(1, 9, size=6000)
    titles = [
        "".join(words[row[:n]]) if n % 3 == 0 else " ".join(words[row[:n]])
        for row, n in zip(picks, lengths, strict=True)
    ]
    index = TextIndex.build(titles, k1=1.2, b=0.75)
    for q in range(150):
        query = " ".join(words[rng.choice(len(words), size=1 + q % 4, p=p / p.sum())])
        for top_n in (1, 10, 100):
            rows, scores = index.search(query, top_n)
            all_rows, all_scores = index.search(query, top_n, exhaustive=True)
            np.testing.assert_array_equal(rows, all_rows)
            np.testing.assert_array_equal(scores, all_scores)


# --- save / load ----------------------------------------------------------------------------------


def test_save_and_load_round_trip_memory_maps_the_arrays(index, tmp_path):
    index.save(tmp_path / "text")
    loaded = TextIndex.load(tmp_path / "text", verify=True)
    assert all(isinstance(a, np.memmap) for a in loaded.arrays.values())
    for name, array in index.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[name], array)
    assert (loaded.k1, loaded.b, loaded.n_docs, loaded.n_terms) == (
        index.k1,
        index.b,
        index.n_docs,
        index.n_terms,
    )
    for query in ["连衣裙 red dress", "brand:nike", "夏"]:
        for got, want in zip(loaded.search(query, 5), index.search(query, 5), strict=True):
            np.testing.assert_array_equal(got, want)


def test_load_refuses_a_missing_or_corrupt_index(index, tmp_path):
    with pytest.raises(BundleError, match="text.json"):
        TextIndex.load(tmp_path / "nothing")
    index.save(tmp_path / "text")
    np.save(tmp_path / "text" / "postings_indptr.npy", np.array([0, 1], dtype=np.int64))
    with pytest.raises(BundleError, match="postings_indptr"):
        TextIndex.load(tmp_path / "text")
    np.save(tmp_path / "text" / "postings_indptr.npy", np.zeros(3, dtype=np.int32))
    with pytest.raises(BundleError, match="int64"):
        TextIndex.load(tmp_path / "text")


def test_verify_finds_postings_out_of_order(index, tmp_path):
    index.save(tmp_path / "text")
    docs = np.array(index.arrays["postings_docs"])
    start, end = index.arrays["postings_indptr"][index._core.term_id("red") : index._core.term_id("red") + 2]
    docs[start:end] = docs[start:end][::-1]
    np.save(tmp_path / "text" / "postings_docs.npy", docs)
    TextIndex.load(tmp_path / "text")  # O(terms) checks pass
    with pytest.raises(BundleError, match="out of order"):
        TextIndex.load(tmp_path / "text", verify=True)


def test_verify_finds_a_doc_row_that_is_not_a_permutation(index, tmp_path):
    index.save(tmp_path / "text")
    doc_row = np.array(index.arrays["doc_row"])
    doc_row[0] = doc_row[1]
    np.save(tmp_path / "text" / "doc_row.npy", doc_row)
    with pytest.raises(BundleError, match="doc_row"):
        TextIndex.load(tmp_path / "text", verify=True)


def test_concurrent_searches_from_threads_agree(index):
    from concurrent.futures import ThreadPoolExecutor

    queries = ["连衣裙 red dress", "ＮＩＫＥ 跑鞋", "夏", "brand:nike", "dress"] * 40
    expected = [index.search(q, 5)[0].tolist() for q in queries]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: index.search(q, 5)[0].tolist(), queries))
    assert got == expected


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "a" * 257, "连" * 257])
def test_bad_queries_raise_invalid_input_naming_the_field(index, query):
    with pytest.raises(InvalidInputError, match="query"):
        index.search(query, 10)
    with pytest.raises(InvalidInputError, match="query"):
        query_vector(query, np.zeros((16, 2), np.float32))


def test_a_query_of_256_characters_is_accepted(index):
    index.search("连" * 256, 10)


def test_non_string_query_and_bad_top_n_are_rejected(index):
    with pytest.raises(InvalidInputError, match="query"):
        index.search(None, 10)
    with pytest.raises(InvalidInputError, match="top_n"):
        index.search("red", -1)


def test_build_rejects_bad_columns():
    with pytest.raises(InvalidInputError, match="brands"):
        TextIndex.build(["a", "b"], brands=["x"])
    with pytest.raises(InvalidInputError, match="titles"):
        TextIndex.build([])
    with pytest.raises(InvalidInputError, match=r"titles\[1\]"):
        TextIndex.build(["a", None])
    with pytest.raises(InvalidInputError, match="b must"):
        TextIndex.build(["a"], b=2.0)


# --- vector recall --------------------------------------------------------------------------------


def test_token_table_solves_the_ridge_problem():
    rng = np.random.default_rng(0)
    words = ["red", "dress", "shoe", "连衣裙", "nike", "blue", "手机壳", "long", "x1", "y2"]
    titles = [" ".join(rng.choice(words, size=rng.integers(1, 5))) for _ in range(200)]
    vectors = rng.normal(size=(200, 3)).astype(np.float32)
    n_features, alpha = 32, 0.5
    table = fit_token_table(titles, vectors, n_features, alpha=alpha, max_iter=500, tol=1e-10)
    tokens = [ref_tokens(t) for t in titles]
    x = FeatureHasher(n_features, input_type="string").transform(tokens).toarray()
    a = x / np.array([len(t) for t in tokens])[:, None]  # mean over each title's tokens
    expected = np.linalg.solve(a.T @ a + alpha * np.eye(n_features), a.T @ vectors)
    np.testing.assert_allclose(table, expected, rtol=1e-4, atol=1e-5)


def test_query_vector_is_the_mean_pooled_table_rows():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(64, 4)).astype(np.float32)
    query = "Red 连衣裙 dress red"
    x = FeatureHasher(64, input_type="string").transform([ref_tokens(query)]).toarray()
    expected = (x / len(ref_tokens(query))) @ table
    np.testing.assert_allclose(query_vector(query, table), expected[0], rtol=1e-5)
    assert query_vector("!!!", table).tolist() == [0.0] * 4


def test_query_vector_recalls_the_item_it_was_fitted_on():
    # Item vectors are the mean of latent word vectors: the table can learn the words.
    rng = np.random.default_rng(2)
    word_vectors = rng.normal(size=(200, 16))
    words = rng.choice(200, size=(400, 4), replace=True)
    titles = [" ".join(f"w{w}" for w in row) for row in words]
    vectors = word_vectors[words].mean(axis=1).astype(np.float32)
    table = fit_token_table(titles, vectors, 2**12, alpha=0.01)
    nearest = [np.argmin(((vectors - query_vector(titles[i], table)) ** 2).sum(1)) for i in range(50)]
    assert np.mean(np.array(nearest) == np.arange(50)) >= 0.95


# --- fusion ---------------------------------------------------------------------------------------


def ref_rrf(lists, k=60.0, weights=None):
    scores = {}
    for li, rows in enumerate(lists):
        seen = set()
        for rank, row in enumerate(rows, start=1):
            if row < 0 or row in seen:
                continue
            seen.add(row)
            scores[row] = scores.get(row, 0.0) + (1.0 if weights is None else weights[li]) / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def test_reciprocal_rank_fusion_equals_the_reference():
    lists = [np.array([5, 3, 9, -1, -1]), np.array([3, 7, 5, 3]), np.array([], dtype=np.int64)]
    rows, scores = reciprocal_rank_fusion(lists, k=10, weights=[1.0, 2.0, 1.0])
    expected = ref_rrf(lists, 10, [1.0, 2.0, 1.0])
    assert rows.tolist() == [r for r, _ in expected]
    np.testing.assert_allclose(scores, [s for _, s in expected], rtol=1e-6)
    assert rows.dtype == np.int64 and scores.dtype == np.float32


def test_reciprocal_rank_fusion_breaks_ties_by_row_and_cuts_to_top_n():
    rows, scores = reciprocal_rank_fusion([[4, 2], [2, 4]], top_n=1)
    assert rows.tolist() == [2] and len(scores) == 1


def test_reciprocal_rank_fusion_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="weights"):
        reciprocal_rank_fusion([[1]], weights=[1.0, 2.0])
    with pytest.raises(InvalidInputError, match=r"ranked\[0\]"):
        reciprocal_rank_fusion([[[1, 2]]])
