"""A stand-in engine for service tests that must control timing (drain, shedding, deadlines): the
same `Engine` surface as `peakrec` (`load_bundle(path)`, a request path per bundle), over a tiny
JSON catalogue. `peakrec serve --engine fake_engine` loads it (tests put tests/ on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from peakrec.bundle.manifest import write_current
from peakrec.errors import BundleError, InvalidInputError, NotFoundError
from peakrec.pipeline import types as t
from peakrec.service.worker import Engine

REGIONS = ("CN-ZJ", "BR", "CN-GS")


def write_bundle(bundles: Path, version: str, n: int = 60, current: bool = True) -> Path:
    """A catalogue of ``n`` items ``I0..I{n-1}``, most popular first, under ``bundles/version``."""
    path = bundles / version
    path.mkdir(parents=True)
    catalogue = {
        "version": version,
        "ids": [f"I{i}" for i in range(n)],
        "titles": [f"item {i} ({version})" for i in range(n)],
        "brands": ["acme", "zeta"],
        "brand": [i % 2 for i in range(n)],
        "stock": [10] * n,
        "price": [9.9 + i for i in range(n)],
    }
    (path / "fake.json").write_text(json.dumps(catalogue))
    if current:
        write_current(bundles, version)
    return path


class Bundle:
    def __init__(self, path: Path):
        try:
            data = json.loads((path / "fake.json").read_text())
        except (OSError, ValueError) as err:
            raise BundleError(f"{path}: unreadable fake.json: {err}") from err
        self.path = path
        self.version = data["version"]
        self.vocab = {"brands": data["brands"]}
        self.manifest = {"version": self.version, "counts": {"items": len(data["ids"]), "users": 0}}
        ids = np.array(data["ids"])
        self.items = SimpleNamespace(
            ids=ids,
            titles=np.array(data["titles"]),
            brand=np.array(data["brand"], dtype=np.int32),
            stock=np.array(data["stock"], dtype=np.int32),
            price=np.array(data["price"], dtype=np.float32),
        )
        self._row = {item: row for row, item in enumerate(data["ids"])}

    def item_rows(self, ids: list[str]) -> np.ndarray:
        return np.array([self._row.get(i, -1) for i in ids], dtype=np.int64)


def load_bundle(path: Path) -> Bundle:
    return Bundle(Path(path))


class Recommender:
    def __init__(self, bundle: Bundle, state: object):
        self.bundle = bundle
        self.state = state

    def _page(self, shopper: t.Shopper, page: t.Page, exclude: tuple[str, ...] = ()) -> t.Recommendation:
        if shopper.region and shopper.region not in REGIONS:
            raise InvalidInputError(f"shopper.region: {shopper.region!r} is not a known region")
        if shopper.context.get("boom"):
            raise RuntimeError("a bug in the engine")
        degraded = False
        sleep_ms = float(shopper.context.get("sleep_ms", 0))
        if sleep_ms:
            budget = None if page.deadline is None else page.deadline - time.monotonic()
            if budget is not None and budget < sleep_ms / 1000:
                time.sleep(max(0.0, budget))
                degraded = True  # out of time: answer the popular fallback
            else:
                time.sleep(sleep_ms / 1000)
        reason = f"popular (pid {os.getpid()})" if shopper.context.get("whoami") else "popular"
        spin_ms = float(shopper.context.get("spin_ms", 0))
        if spin_ms:  # CPU-bound Python work holding the GIL, as the request path's Python parts do
            until = time.perf_counter() + spin_ms / 1000
            while time.perf_counter() < until:
                pass
        s = self.state
        eligible = (s.available == 1) & (s.stock > 0)
        blocked = self.bundle.item_rows(list(shopper.exclude_items) + list(exclude))
        eligible[blocked[blocked >= 0]] = False
        rows = np.flatnonzero(eligible)
        start = page.page * page.page_size
        rows = rows[start : start + page.page_size]
        return t.Recommendation(
            item_ids=self.bundle.items.ids[rows].tolist(),
            rows=rows.astype(np.int64),
            scores=(1.0 / (1.0 + rows)).astype(np.float32),
            bundle_version=self.bundle.version,
            degraded=degraded,
            cold=not shopper.user_id,
            reasons=[reason] * len(rows) if page.explain else None,
            eligible_count=int(eligible.sum()),
            stage_seconds={"rank": 1e-5},
        )

    def storefront(self, request: t.StorefrontRequest) -> t.Recommendation:
        return self._page(request.shopper, request.page)

    def search(self, request: t.SearchRequest) -> t.Recommendation:
        return self._page(request.shopper, request.page)

    def similar_items(self, request: t.SimilarItemsRequest) -> t.Recommendation:
        if self.bundle.item_rows([request.item_id])[0] < 0:
            raise NotFoundError(f"item_id: {request.item_id!r} is not in the catalogue")
        return self._page(request.shopper, request.page, exclude=(request.item_id,))


ENGINE = Engine(load_bundle, Recommender)
