"""FeatureHasher against its oracles: scikit-learn's FeatureHasher and the mmh3 package."""

import math
from collections import deque

import mmh3
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from peakrec import FeatureHasher, _core
from peakrec.errors import InvalidInputError
from sklearn.feature_extraction import FeatureHasher as SkHasher

# Any unicode except lone surrogates (not encodable as UTF-8, rejected by both libraries).
names = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-5, 5), names)
n_features_st = st.one_of(st.integers(1, 64), st.integers(1, 2**31 - 1), st.sampled_from([2**20, 2**31 - 1]))


def assert_same(ours, theirs):
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    theirs = sp.csr_matrix(theirs)
    assert np.array_equal(ours.indptr, theirs.indptr)
    assert np.array_equal(ours.indices, theirs.indices)
    assert np.array_equal(ours.data, theirs.data)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.dictionaries(names, values, max_size=6), min_size=1, max_size=8),
    n_features=n_features_st,
    alternate_sign=st.booleans(),
)
def test_dict_input_matches_sklearn(rows, n_features, alternate_sign):
    kwargs = dict(n_features=n_features, input_type="dict", alternate_sign=alternate_sign)
    assert_same(FeatureHasher(**kwargs).transform(rows), SkHasher(**kwargs).transform(rows))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(st.tuples(names, values), max_size=6), min_size=1, max_size=8),
    n_features=n_features_st,
    alternate_sign=st.booleans(),
)
def test_pair_input_matches_sklearn(rows, n_features, alternate_sign):
    kwargs = dict(n_features=n_features, input_type="pair", alternate_sign=alternate_sign)
    assert_same(FeatureHasher(**kwargs).transform(rows), SkHasher(**kwargs).transform(rows))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(names, max_size=8), min_size=1, max_size=8),
    n_features=n_features_st,
    alternate_sign=st.booleans(),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_string_input_matches_sklearn(rows, n_features, alternate_sign, dtype):
    kwargs = dict(n_features=n_features, input_type="string", alternate_sign=alternate_sign, dtype=dtype)
    assert_same(FeatureHasher(**kwargs).transform(rows), SkHasher(**kwargs).transform(rows))


def test_cjk_features_and_duplicates_match_sklearn():
    rows = [
        {"region": "CN-ZJ", "query": "连衣裙", "品牌": "李宁", "clicks": 3},
        {"segment": "小镇青年", "price": 9.9, "segment2": "小镇青年"},
    ]
    pairs = [[("连衣裙", 1), ("连衣裙", 2.5), ("red", -1)], []]
    for input_type, raw in (("dict", rows), ("pair", pairs)):
        for n in (1, 7, 1000, 2**20, 2**31 - 1):
            kwargs = dict(n_features=n, input_type=input_type)
            assert_same(FeatureHasher(**kwargs).transform(raw), SkHasher(**kwargs).transform(raw))


def test_generator_input_and_bytes_names_match_sklearn():
    rows = [[b"device=ios", "region=BR"], ("a", "a", "b")]
    ours = FeatureHasher(64, input_type="string").transform(iter(rows))
    assert_same(ours, SkHasher(64, input_type="string").transform(iter(rows)))


def test_hash_of_minus_2_pow_31_uses_sklearn_bucket():
    # Found by inverting MurmurHash3: both hash to -2**31 with seed 0, where abs() would overflow.
    for key in ("SgpQavc", b"U\x07o\x83"):
        assert mmh3.hash(key, 0) == -(2**31)
        for n in (1, 3, 1000, 2**20, 2**31 - 1):
            ours = FeatureHasher(n, input_type="string").transform([[key]])
            assert_same(ours, SkHasher(n, input_type="string").transform([[key]]))
            assert ours.indices[0] == (2**31 - 1 - (n - 1)) % n
            assert ours.data[0] == -1.0


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(names, st.binary(max_size=40)), seed=st.integers(0, 2**32 - 1))
def test_murmurhash_matches_mmh3(key, seed):
    assert _core.murmurhash3_32(key, seed) == mmh3.hash(key, seed)
    assert _core.murmurhash3_32(key, seed, positive=True) == mmh3.hash(key, seed, signed=False)


def test_output_is_identical_for_any_thread_count():
    rng = np.random.default_rng(1)
    rows = [{f"f{j}": float(rng.integers(-3, 4)) for j in rng.integers(0, 50, 30)} for _ in range(5000)]
    results = [FeatureHasher(2**10, n_threads=n).transform_csr(rows) for n in (1, 2, 3, None)]
    for parts in results[1:]:
        for ours, first in zip(parts, results[0]):
            assert np.array_equal(ours, first)


class Name(str):
    """A str subclass: hashed through the Python API rather than read in place."""


@pytest.mark.parametrize(
    "rows",
    [
        [["region=CN-ZJ", "连衣裙", "café", "emoji=😀"], ["a", "a", "b"], []],  # ASCII, UCS1, UCS2, UCS4
        [("device=ios", "x"), ["y", "device=ios"]],  # tuples and lists mixed
        (["a", "b"], ("c",)),  # a tuple of rows
        [["a", Name("b")], [Name("ü")]],  # str subclasses
        [["a", b"bytes=1"], ["b"]],  # bytes names
        [["a"], deque(["b", "c"])],  # a row that is not a list or tuple
        [["é" * 40, "x" * 100, ""]],  # long and empty names
    ],
)
def test_string_rows_of_any_shape_match_sklearn(rows):
    expected = SkHasher(2**20, input_type="string").transform(rows)
    for n_threads in (1, 2, None):
        assert_same(FeatureHasher(2**20, input_type="string", n_threads=n_threads).transform(rows), expected)


def test_string_output_is_identical_for_any_thread_count():
    rng = np.random.default_rng(2)
    words = ["region=CN-ZJ", "连衣裙", "device=ios", "segment=小镇青年", "a", "b" * 30]
    rows = [[words[i] for i in rng.integers(0, len(words), rng.integers(0, 70))] for _ in range(9000)]
    expected = SkHasher(2**10, input_type="string").transform(rows)
    for n_threads in (1, 2, 3, 8, None):
        for dtype in (np.float64, np.float32):
            ours = FeatureHasher(2**10, input_type="string", n_threads=n_threads, dtype=dtype).transform(rows)
            assert_same(ours, expected.astype(dtype))


@pytest.mark.parametrize("n_features", [3, 2**20, 2**25 - 1, 2**25 + 3, 2**26 + 1, 2**31 - 1])
def test_rows_around_the_short_row_limit_match_sklearn(n_features):
    # Rows of up to 64 names with columns below 2^25 are sorted on a fast path; the rest are not.
    words = ["region=CN-ZJ", "连衣裙", "café", "emoji=😀", "a"] + [f"w{i}" for i in range(200)]
    rng = np.random.default_rng(n_features)
    rows = [
        [words[i] for i in rng.integers(0, high, length)]  # small `high`: names repeat within a row
        for length in (0, 1, 2, 63, 64, 65, 130)
        for high in (3, len(words))
    ]
    expected = SkHasher(n_features, input_type="string").transform(rows)
    for n_threads in (1, 3):
        hasher = FeatureHasher(n_features, input_type="string", n_threads=n_threads)
        assert_same(hasher.transform(rows), expected)


@pytest.mark.parametrize("n_features", [16, 2**20, 2**25, 2**26, 1_000_003])
@pytest.mark.parametrize("alternate_sign", [True, False])
def test_ascii_names_of_every_length_match_sklearn(n_features, alternate_sign):
    # ASCII names of up to 64 bytes are hashed eight at a time; longer ones one by one.
    rng = np.random.default_rng(n_features)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz=0123456789"))
    words = ["".join(rng.choice(letters, length)) for length in range(0, 100) for _ in range(3)]
    rows = [[words[i] for i in rng.integers(0, len(words), rng.integers(0, 70))] for _ in range(400)]
    rows += [[words[i] for i in range(start, len(words), 7)] for start in range(7)]
    kwargs = dict(n_features=n_features, input_type="string", alternate_sign=alternate_sign)
    expected = SkHasher(**kwargs).transform(rows)
    assert_same(FeatureHasher(**kwargs, n_threads=1).transform(rows), expected)
    pa = pytest.importorskip("pyarrow")
    assert_same(FeatureHasher(**kwargs).transform_arrow(pa.array(rows, type=pa.list_(pa.string()))), expected)


def test_bad_name_late_in_a_long_list_raises_naming_its_row():
    good = [["a", "é"]] * 5000
    for n_threads in (1, 2):
        hasher = FeatureHasher(16, input_type="string", n_threads=n_threads)
        with pytest.raises(InvalidInputError, match="row 5000: feature names must be str, got int"):
            hasher.transform(good + [["c", 7]] + [["\ud800"]])
        with pytest.raises(InvalidInputError, match="row 5000: feature name .* cannot be encoded as UTF-8"):
            hasher.transform(good + [("c", "\ud800")])


def test_transform_csr_needs_no_scipy_and_matches_transform():
    rows = [{"a": 1, "b": "x"}, {}]
    indptr, indices, data = FeatureHasher(16).transform_csr(rows)
    matrix = FeatureHasher(16).transform(rows)
    assert isinstance(indptr, np.ndarray) and indices.dtype == np.int32 and data.dtype == np.float64
    assert np.array_equal(indptr, matrix.indptr) and np.array_equal(indices, matrix.indices)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.lists(names, max_size=8), min_size=1, max_size=8),
    n_features=st.integers(1, 300),
    alternate_sign=st.booleans(),
)
def test_pool_equals_sklearn_matrix_times_table(rows, n_features, alternate_sign):
    table = np.random.default_rng(n_features).standard_normal((n_features, 5)).astype(np.float32)
    kwargs = dict(n_features=n_features, input_type="string", alternate_sign=alternate_sign)
    matrix = SkHasher(**kwargs).transform(rows)
    expected_sum = matrix @ table.astype(np.float64)
    counts = np.array([len(r) for r in rows], dtype=np.float64)[:, None]
    expected_mean = np.where(counts > 0, expected_sum / np.maximum(counts, 1), 0)
    hasher = FeatureHasher(**kwargs)
    np.testing.assert_allclose(hasher.pool(rows, table), expected_sum, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hasher.pool(rows, table, mode="mean"), expected_mean, rtol=1e-5, atol=1e-5)


def test_pool_of_dict_rows_uses_values():
    rows = [{"a": 2.0, "b": "x"}, {"a": -1}]
    table = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    expected = SkHasher(8).transform(rows) @ table.astype(np.float64)
    np.testing.assert_allclose(FeatureHasher(8).pool(rows, table), expected)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"a": 1}, {3: 1.0}], "row 1: feature names must be str, got int"),
        ([{"a": float("nan")}], 'row 0: value of feature "a" is NaN'),
        ([{"a": math.inf}], 'row 0: value of feature "a" is inf'),
        ([{"a": [1, 2]}], 'row 0: value of feature "a" must be a number or str, got list'),
        ([["a"]], "row 0: expected a dict of features, got list"),
        ([{"a": None}], "must be a number or str, got NoneType"),
    ],
)
def test_bad_dict_rows_raise_naming_the_row(rows, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")) as err:
        FeatureHasher(16).transform(rows)
    assert isinstance(err.value, ValueError)


def test_bad_string_and_pair_rows_raise():
    with pytest.raises(InvalidInputError, match="row 0: a sample can not be a single string"):
        FeatureHasher(16, input_type="string").transform(["abc"])
    with pytest.raises(InvalidInputError, match="row 1: feature names must be str, got float"):
        FeatureHasher(16, input_type="string").transform([["a"], [1.5]])
    with pytest.raises(InvalidInputError, match=r"row 0: expected \(name, value\) pairs, got str"):
        FeatureHasher(16, input_type="pair").transform([["ab"]])
    with pytest.raises(InvalidInputError, match="row 0: feature name .* cannot be encoded as UTF-8"):
        FeatureHasher(16, input_type="string").transform([["\ud800"]])


@pytest.mark.parametrize("n", [0, -1, 2**31, 1.5, True])
def test_n_features_out_of_range_is_rejected(n):
    with pytest.raises(InvalidInputError, match="n_features"):
        FeatureHasher(n)


def test_bad_options_are_rejected():
    with pytest.raises(InvalidInputError, match="input_type"):
        FeatureHasher(8, input_type="list")
    with pytest.raises(InvalidInputError, match="dtype"):
        FeatureHasher(8, dtype=np.int32)
    with pytest.raises(InvalidInputError, match="n_threads"):
        FeatureHasher(8, n_threads=0)
    with pytest.raises(InvalidInputError, match="empty"):
        FeatureHasher(8).transform([])


@pytest.mark.parametrize(
    "table, message",
    [
        (np.zeros((8, 3), dtype=np.float64), "float32"),
        (np.zeros((7, 3), dtype=np.float32), r"shape \(8, dim\)"),
        (np.zeros(8, dtype=np.float32), r"shape \(8, dim\)"),
        (np.zeros((3, 8), dtype=np.float32).T, "C-contiguous"),
        ([[0.0]], "numpy array"),
    ],
)
def test_pool_rejects_bad_tables(table, message):
    with pytest.raises(InvalidInputError, match=message):
        FeatureHasher(8).pool([{"a": 1}], table)


def test_pool_rejects_unknown_mode():
    with pytest.raises(InvalidInputError, match="mode"):
        FeatureHasher(8).pool([{"a": 1}], np.zeros((8, 2), np.float32), mode="max")


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.lists(names, max_size=8), min_size=1, max_size=10),
    n_features=n_features_st,
    alternate_sign=st.booleans(),
    large=st.booleans(),
    start=st.integers(0, 3),
)
def test_arrow_column_matches_sklearn(rows, n_features, alternate_sign, large, start):
    pa = pytest.importorskip("pyarrow")
    kind = pa.large_list(pa.large_string()) if large else pa.list_(pa.string())
    column = pa.array([["pad"]] * start + rows, type=kind).slice(start)  # sliced: offsets not at 0
    kwargs = dict(n_features=n_features, input_type="string", alternate_sign=alternate_sign)
    assert_same(FeatureHasher(**kwargs).transform_arrow(column), SkHasher(**kwargs).transform(rows))


def test_arrow_column_rejects_wrong_types_and_nulls():
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(InvalidInputError, match="list<string>"):
        FeatureHasher(8, input_type="string").transform_arrow(pa.array([1, 2]))
    with pytest.raises(InvalidInputError, match="row 1: the list of features is null"):
        FeatureHasher(8, input_type="string").transform_arrow(pa.array([["a"], None]))
    with pytest.raises(InvalidInputError, match="feature name is null"):
        FeatureHasher(8, input_type="string").transform_arrow(pa.array([["a", None]]))


def _hash_in_child(queue) -> None:
    hasher = FeatureHasher(2**10, input_type="string", n_threads=2)
    queue.put(hasher.transform_csr([["a", "b"]])[1].tolist())


def test_threaded_hasher_works_in_a_forked_child():
    """A forked child has none of the parent's pool threads: a kept pool would hang it."""
    import multiprocessing

    FeatureHasher(2**10, input_type="string", n_threads=2).transform_csr([["a"]])  # parent's pool
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_hash_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in the thread pool")
    want = SkHasher(2**10, input_type="string").transform([["a", "b"]]).indices.tolist()
    assert queue.get(timeout=5) == want
