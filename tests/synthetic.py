"""A deterministic, bundle-shaped catalogue made of synthetic arrays, for tests and benchmarks.

``synthetic_bundle`` returns an object with the attributes and look-ups of ``peakrec.load_bundle``'s
``Bundle`` (docs/bundle-format.md) without writing files, so the request path can be tested and
measured at any size. Vectors come from ``faiss.contrib.datasets.SyntheticDataset`` (clustered,
inner-product metric), whose brute-force ground truth is what recall is measured against.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import faiss
import numpy as np
from faiss.contrib.datasets import SyntheticDataset
from peakrec.retrieval.lists import open_catalog  # noqa: F401 (tests import it from here)

NOW = 1_764_000_000  # a fixed "now" (2025-11-24) so eligibility by time is reproducible
DAY = 86_400


class SyntheticBundle:
    """Bundle-like object; see ``peakrec.bundle.load.Bundle`` for the attribute contract."""

    def __init__(self, **attrs):
        self.lists = None  # no inverted lists (a small catalogue's bundle)
        self.__dict__.update(attrs)
        self._item_sorted = np.sort(self.items.ids)
        self._item_order = np.argsort(self.items.ids, kind="stable")
        self._user_sorted = np.sort(self.users.ids)
        self._user_order = np.argsort(self.users.ids, kind="stable")
        self.items.ids_sorted, self.items.ids_order = self._item_sorted, self._item_order
        self.users.ids_sorted, self.users.ids_order = self._user_sorted, self._user_order
        self._regions = {code: i for i, code in enumerate(self.vocab["regions"])}

    def item_rows(self, ids) -> np.ndarray:
        return _lookup(self._item_sorted, self._item_order, ids)

    def user_row(self, user_id: str) -> int:
        return int(_lookup(self._user_sorted, self._user_order, [user_id])[0])

    def region_index(self, code: str) -> int:
        return self._regions.get(code, -1)


def _lookup(sorted_ids: np.ndarray, order: np.ndarray, ids) -> np.ndarray:
    # dtype=str, not the column's: a longer id must not be truncated into a match.
    ids = np.asarray(ids, dtype=str) if len(ids) else np.empty(0, sorted_ids.dtype)
    pos = np.searchsorted(sorted_ids, ids)
    pos_c = np.minimum(pos, len(sorted_ids) - 1)
    found = (pos < len(sorted_ids)) & (sorted_ids[pos_c] == ids)
    return np.where(found, order[pos_c], -1).astype(np.int64)


def synthetic_bundle(
    n_items: int = 20_000,
    n_users: int = 2_000,
    dim: int = 32,
    n_regions: int = 70,
    n_brands: int = 200,
    n_categories: int = 60,
    index_factory: str = "Flat",
    seed: int = 7,
    index: faiss.Index | None = None,
    fallback_k: int = 200,
    index_cache: Path | None = None,
) -> SyntheticBundle:
    """A catalogue of ``n_items`` with every column the request path reads.

    Eligibility-relevant columns are drawn so that each rule bites: ~5% out of stock, items sell in
    ~80% of regions, 3% member-only, 2% presale, 2% not yet launched, 5% launched in the last week.
    """
    rng = np.random.default_rng(seed)
    ds = SyntheticDataset(dim, 0, n_items, n_users, metric="IP", seed=seed)
    vectors = np.ascontiguousarray(ds.get_database(), dtype=np.float32)
    user_vectors = np.ascontiguousarray(ds.get_queries(), dtype=np.float32)
    if index is None and index_cache is not None and Path(index_cache).exists():
        index = faiss.read_index(str(index_cache))  # built from these same vectors (same seed)
    if index is None:
        index = faiss.index_factory(dim, index_factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        if index_cache is not None:
            Path(index_cache).parent.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index, str(index_cache) + ".tmp")
            Path(str(index_cache) + ".tmp").rename(index_cache)

    words = (n_regions + 63) // 64
    region_bits = rng.random((n_items, n_regions)) < 0.8
    packed = np.packbits(region_bits, axis=1, bitorder="little")
    packed = np.pad(packed, ((0, 0), (0, words * 8 - packed.shape[1])))
    regions = np.ascontiguousarray(packed).view(np.uint64).reshape(n_items, words)

    launch = NOW - rng.integers(30 * DAY, 700 * DAY, n_items)
    new = rng.random(n_items) < 0.05
    launch[new] = NOW - rng.integers(0, 7 * DAY, new.sum())
    future = rng.random(n_items) < 0.02
    launch[future] = NOW + rng.integers(DAY, 30 * DAY, future.sum())
    presale = rng.random(n_items) < 0.02
    presale_start = np.where(presale, NOW - rng.integers(-5 * DAY, 5 * DAY, n_items), 0).astype(np.int64)
    presale_end = np.where(presale, presale_start + 7 * DAY, 0).astype(np.int64)
    launch = np.where(presale, presale_end + DAY, launch).astype(np.int64)

    brands = [f"brand-{i:03d}" for i in range(n_brands)]
    top = ["服饰", "数码", "家居", "美妆", "食品", "运动"]
    categories = [f"{top[i % len(top)]}>c{i // len(top)}>leaf{i}" for i in range(n_categories)]
    segments = [f"seg-{i}" for i in range(20)]
    campaigns = [
        {"id": f"camp-{c}", "segments": [segments[c % 20], segments[(c * 7) % 20]], "boost": 0.2}
        for c in range(8)
    ]
    campaign_bits = np.zeros(n_items, np.uint64)
    for c in range(len(campaigns)):
        campaign_bits |= (rng.random(n_items) < 0.03).astype(np.uint64) << np.uint64(c)
    popularity = rng.pareto(1.5, n_items).astype(np.float32)

    items = SimpleNamespace(
        ids=np.array([f"I{i:07d}" for i in range(n_items)]),
        titles=np.array([f"item {i}" for i in range(n_items)]),
        vectors=vectors,
        brand=rng.zipf(1.6, n_items).clip(1, n_brands).astype(np.int32) - 1,
        category=rng.integers(0, n_categories, n_items).astype(np.int32),
        price=rng.uniform(1, 500, n_items).astype(np.float32),
        stock=np.where(rng.random(n_items) < 0.05, 0, rng.integers(1, 100, n_items)).astype(np.int32),
        regions=regions,
        launch_ts=launch,
        presale_start=presale_start,
        presale_end=presale_end,
        member_only=(rng.random(n_items) < 0.03).astype(np.uint8),
        campaigns=campaign_bits,
        popularity=popularity,
    )
    has_vector = (rng.random(n_users) < 0.9).astype(np.uint8)
    user_vectors[has_vector == 0] = 0
    purchased_counts = rng.integers(0, 6, n_users)
    features = [
        [f"device={'ios' if u % 2 else 'android'}", f"segment={segments[u % 20]}"] for u in range(n_users)
    ]
    users = SimpleNamespace(
        ids=np.array([f"U{u:06d}" for u in range(n_users)]),
        vectors=user_vectors,
        has_vector=has_vector,
        region=rng.integers(0, n_regions, n_users).astype(np.int16),
        segments=(np.uint64(1) << rng.integers(0, 20, n_users).astype(np.uint64)),
        lifecycle=rng.integers(0, 4, n_users).astype(np.uint8),
        memberships_indptr=np.concatenate([[0], np.cumsum(np.full(n_users, 1))]).astype(np.int64),
        memberships=rng.integers(0, n_brands, n_users).astype(np.int32),
        purchased_indptr=np.concatenate([[0], np.cumsum(purchased_counts)]).astype(np.int64),
        purchased=rng.integers(0, n_items, purchased_counts.sum()).astype(np.int64),
        features_indptr=np.concatenate([[0], np.cumsum([len(f) for f in features])]).astype(np.int64),
        features=np.array([f for fs in features for f in fs]),
    )
    n_buckets = 2**12
    table = (rng.standard_normal((n_buckets, dim)) * 0.3).astype(np.float32)
    order = np.argsort(-popularity, kind="stable")
    region_popular = np.full((n_regions, fallback_k), -1, np.int32)
    for r in range(n_regions):
        sellable = order[region_bits[order, r]][:fallback_k]
        region_popular[r, : len(sellable)] = sellable
    vocab = {
        "regions": [f"R{r:03d}" for r in range(n_regions)],
        "brands": brands,
        "categories": categories,
        "segments": segments,
        "lifecycle": ["awareness", "interest", "purchase", "loyalty"],
        "campaigns": campaigns,
    }
    manifest = {
        "schema_version": 1,
        "version": f"synthetic-{n_items}-{seed}",
        "counts": {"items": n_items, "users": n_users},
        "dimension": dim,
        "metric": "inner_product",
        "index": {"factory": index_factory, "search_params": {}},
        "coldstart": {
            "n_features": n_buckets,
            "input_type": "string",
            "alternate_sign": True,
            "pooling": "mean",
        },
    }
    return SyntheticBundle(
        path=Path("/nonexistent/synthetic"),
        version=manifest["version"],
        manifest=manifest,
        config={},
        vocab=vocab,
        index=index,
        index_half=None,
        items=items,
        users=users,
        coldstart_table=table,
        region_popular=region_popular,
        text_dir=Path("/nonexistent/synthetic/text"),
    )
