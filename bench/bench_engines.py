"""Engines for the service benchmark, each loaded by `peakrec serve --engine MODULE` in its workers.

A benchmark bundle directory holds `synthetic.json` (the parameters of a
`tests/synthetic.py` catalogue, regenerated identically in every worker) and `index.faiss`
(built once, then mapped read-only by every worker); a real bundle directory (with manifest.json)
is loaded with `peakrec.load_bundle`.

Each module's ``ENGINE`` (a ``peakrec.service.worker.Engine``) is what the workers serve with.

* ``bench_engines`` — the real request path: ``peakrec.Recommender``.
* ``bench_engines_empty`` — (a) answers every RPC with the same 100-item page, no work.
* ``bench_engines_faiss`` — (b) bare FAISS search for the shopper's stored vector, top page_size.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
from peakrec.bundle.manifest import write_current
from peakrec.pipeline.recommender import Recommender
from peakrec.pipeline.types import Recommendation
from peakrec.service.worker import Engine
from synthetic import synthetic_bundle

__all__ = ["ENGINE", "load_bundle"]
EF_SEARCH = 128


def write_bundle(bundles: Path, version: str, n_items: int, n_users: int, dim: int, factory: str) -> Path:
    """Builds the index once (all cores) and writes the parameters; returns the bundle path."""
    path = bundles / version
    path.mkdir(parents=True)
    params = {"n_items": n_items, "n_users": n_users, "dim": dim, "factory": factory, "seed": 7}
    bundle = synthetic_bundle(n_items=n_items, n_users=n_users, dim=dim, index_factory=factory, seed=7)
    faiss.write_index(bundle.index, str(path / "index.faiss"))
    (path / "synthetic.json").write_text(json.dumps(params))
    write_current(bundles, version)
    return path


def load_bundle(path: Path):
    path = Path(path)
    if (path / "manifest.json").exists():
        import peakrec

        return peakrec.load_bundle(path)
    params = json.loads((path / "synthetic.json").read_text())
    index = faiss.read_index(str(path / "index.faiss"), faiss.IO_FLAG_MMAP)
    bundle = synthetic_bundle(
        n_items=params["n_items"],
        n_users=params["n_users"],
        dim=params["dim"],
        index_factory=params["factory"],
        seed=params["seed"],
        index=index,
    )
    bundle.manifest["index"]["search_params"] = {"efSearch": EF_SEARCH}
    bundle.path, bundle.version = path, path.name
    return bundle


def query_vector(bundle, user_id: str) -> np.ndarray:
    row = bundle.user_row(user_id)
    return np.ascontiguousarray(bundle.users.vectors[max(row, 0)], dtype=np.float32).reshape(1, -1)


def bare_search(bundle, user_id: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: one FAISS search with the same efSearch, nothing else."""
    index = bundle.index
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=max(EF_SEARCH, k))
        scores, rows = index.search(query_vector(bundle, user_id), k, params=params)
    else:
        scores, rows = index.search(query_vector(bundle, user_id), k)
    return scores[0], rows[0]


class StorefrontOnly:
    """A stand-in that serves Storefront alone (the service benchmark's other RPCs are unused)."""

    def search(self, request) -> Recommendation:
        raise NotImplementedError("search: not in this benchmark engine")

    def similar_items(self, request) -> Recommendation:
        raise NotImplementedError("similar_items: not in this benchmark engine")


class FaissOnly(StorefrontOnly):
    def __init__(self, bundle, state=None):
        self.bundle = bundle

    def storefront(self, request) -> Recommendation:
        scores, rows = bare_search(self.bundle, request.shopper.user_id, request.page.page_size)
        rows = rows[rows >= 0]
        return Recommendation(
            item_ids=self.bundle.items.ids[rows].tolist(),
            rows=rows,
            scores=scores[: len(rows)],
            bundle_version=self.bundle.version,
        )


class Empty(StorefrontOnly):
    def __init__(self, bundle, state=None):
        self.bundle = bundle
        rows = np.arange(100, dtype=np.int64)
        self.page = Recommendation(
            item_ids=self.bundle.items.ids[rows].tolist(),
            rows=rows,
            scores=np.linspace(1, 0, 100, dtype=np.float32),
            bundle_version=bundle.version,
        )

    def storefront(self, request) -> Recommendation:
        return self.page


ENGINE = Engine(load_bundle, Recommender)
