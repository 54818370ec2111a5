"""peakrec.FeatureHasher vs scikit-learn's FeatureHasher, 100k rows x 20 string features."""

import numpy as np
import pytest
from conftest import median_seconds, record_ratio
from peakrec import FeatureHasher
from sklearn.feature_extraction import FeatureHasher as SkHasher

N_FEATURES = 2**20
# pytest-benchmark groups: ours and the scikit-learn peer side by side in one table (and plot).
HASH_GROUP = "hash 100k rows x 20 strings"
POOL_GROUP = "pool 100k rows x 20 strings -> 32 dims"


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    keys = ["region", "device", "segment", "age", "query", "brand", "cat", "hour", "city", "os"]
    codes = rng.integers(0, 5000, size=(100_000, 20))
    return [[f"{keys[j % 10]}{j}={c}" for j, c in enumerate(row)] for row in codes.tolist()]


@pytest.fixture(scope="module")
def sklearn_seconds(rows):
    return median_seconds(lambda: SkHasher(N_FEATURES, input_type="string").transform(rows), rounds=3)


@pytest.mark.parametrize("n_threads", [1, None], ids=["1-thread", "all-threads"])
def test_transform_vs_sklearn(benchmark, rows, sklearn_seconds, n_threads):
    ours = FeatureHasher(N_FEATURES, input_type="string", n_threads=n_threads)
    expected = SkHasher(N_FEATURES, input_type="string").transform(rows)
    got = ours.transform(rows)
    assert (got != expected).nnz == 0 and np.array_equal(got.indices, expected.indices)
    benchmark.group = HASH_GROUP
    benchmark(ours.transform, rows)
    threads = n_threads or "all"
    record_ratio(benchmark, f"hash 100k x 20 vs sklearn, {threads} thread(s)", sklearn_seconds, 20)


def test_sklearn_transform_peer(benchmark, rows):
    """The peer itself, timed by pytest-benchmark in the same group (few rounds: ~0.5 s a call)."""
    benchmark.group = HASH_GROUP
    sk = SkHasher(N_FEATURES, input_type="string")
    benchmark.pedantic(sk.transform, args=(rows,), rounds=3, warmup_rounds=1)


def test_pool_vs_sklearn_matmul(benchmark, rows):
    table = np.random.default_rng(1).standard_normal((N_FEATURES, 32)).astype(np.float32)
    sk = SkHasher(N_FEATURES, input_type="string")

    def baseline():
        return np.asarray(sk.transform(rows) @ table)

    ours = FeatureHasher(N_FEATURES, input_type="string")
    np.testing.assert_allclose(ours.pool(rows, table), baseline(), rtol=1e-4, atol=1e-4)
    baseline_seconds = median_seconds(baseline, rounds=3)
    benchmark.group = POOL_GROUP
    benchmark(ours.pool, rows, table)
    record_ratio(benchmark, "pool 100k x 20 -> 32 dims vs sklearn + matmul", baseline_seconds)


def test_sklearn_matmul_pool_peer(benchmark, rows):
    benchmark.group = POOL_GROUP
    table = np.random.default_rng(1).standard_normal((N_FEATURES, 32)).astype(np.float32)
    sk = SkHasher(N_FEATURES, input_type="string")
    benchmark.pedantic(lambda: np.asarray(sk.transform(rows) @ table), rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("n_threads", [1, None], ids=["1-thread", "all-threads"])
def test_arrow_column_vs_sklearn(benchmark, rows, sklearn_seconds, n_threads):
    pa = pytest.importorskip("pyarrow")
    column = pa.array(rows, type=pa.list_(pa.string()))
    ours = FeatureHasher(N_FEATURES, input_type="string", n_threads=n_threads)
    expected = SkHasher(N_FEATURES, input_type="string").transform(rows)
    got = ours.transform_arrow(column)
    assert (got != expected).nnz == 0 and np.array_equal(got.indices, expected.indices)
    benchmark.group = HASH_GROUP
    benchmark(ours.transform_arrow, column)
    threads = n_threads or "all"
    record_ratio(benchmark, f"hash Arrow column vs sklearn, {threads} thread(s)", sklearn_seconds, 20)
