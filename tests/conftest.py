import pytest
from peakrec import Recommender
from peakrec.pipeline.synthetic import synthetic_bundle


@pytest.fixture(scope="session")
def bundle():
    """20k items, exact (Flat) index: retrieval differences come only from our strategies."""
    return synthetic_bundle(n_items=20_000, n_users=500, dim=32, seed=7)


@pytest.fixture(scope="session")
def hnsw_bundle():
    """20k items under HNSW32, the bundle default, for filtered-recall checks."""
    return synthetic_bundle(n_items=20_000, n_users=200, dim=32, seed=11, index_factory="HNSW32,Flat")


@pytest.fixture(scope="session")
def recommender(bundle):
    return Recommender(bundle)
