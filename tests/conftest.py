"""Shared fixtures: a 2,000-item demo catalogue generated once per session (bundle tests), and
synthetic bundle-shaped catalogues (request-path tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from peakrec import Recommender
from peakrec.catalog.demo_data import DemoSpec, generate
from synthetic import synthetic_bundle

SMALL = DemoSpec(items=2000, users=400, dim=16, seed=7)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, SMALL)
    return out


def demo_inputs(demo: Path) -> dict[str, Path]:
    return {
        "items": demo / "items.jsonl",
        "users": demo / "users.jsonl",
        "item_vectors": demo / "item_vectors.npy",
        "user_vectors": demo / "user_vectors.npy",
        "config": demo / "build.toml",
    }


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
