"""Shared small catalogues: a 2,000-item demo generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from peakrec.catalog.demo_data import DemoSpec, generate

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
