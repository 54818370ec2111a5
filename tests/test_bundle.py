"""Bundles: round trip, checksums, atomic publish, recall and cold start against independent oracles."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import peakrec
import pytest
from conftest import demo_inputs
from hypothesis import given
from hypothesis import strategies as st
from peakrec.bundle import build as build_module
from peakrec.bundle import load as load_module
from peakrec.bundle.coldstart import mean_pooling_matrix, user_features
from peakrec.catalog.regions import REGION_CODES
from peakrec.catalog.schema import expand_regions
from peakrec.errors import BundleError
from peakrec.features import FeatureHasher


def _jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def built(demo_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles")
    return peakrec.build_bundle(**demo_inputs(demo_dir), out=out, progress=False)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(bundle, tmp_path / bundle.name))


def test_round_trip_items(built, demo_dir):
    b = peakrec.load_bundle(built)
    items = _jsonl(demo_dir / "items.jsonl")
    assert b.manifest["counts"]["items"] == len(items) == len(b.items.ids)
    assert b.items.ids.tolist() == [i["item_id"] for i in items]
    assert b.items.titles.tolist() == [i["title"] for i in items]
    np.testing.assert_array_equal(b.items.vectors, np.load(demo_dir / "item_vectors.npy"))
    np.testing.assert_array_equal(b.items.price, np.array([i["price"] for i in items], np.float32))
    np.testing.assert_array_equal(b.items.stock, [i["stock"] for i in items])
    assert [b.vocab["brands"][k] for k in b.items.brand] == [i["brand"] for i in items]
    assert [b.vocab["categories"][k] for k in b.items.category] == [i["category"] for i in items]
    for row in (0, 3, 17, len(items) - 1):
        bits = {
            REGION_CODES[r]
            for r in range(len(REGION_CODES))
            if (int(b.items.regions[row, r // 64]) >> (r % 64)) & 1
        }
        assert bits == set(expand_regions(items[row]["regions"]))
        ids = {b.vocab["campaigns"][c]["id"] for c in range(64) if (int(b.items.campaigns[row]) >> c) & 1}
        assert ids == set(items[row]["campaigns"])
    assert b.items.regions.dtype == np.uint64 and b.items.regions.shape[1] == (len(REGION_CODES) + 63) // 64


def test_round_trip_users(built, demo_dir):
    b = peakrec.load_bundle(built)
    users = _jsonl(demo_dir / "users.jsonl")
    assert b.users.ids.tolist() == [u["user_id"] for u in users]
    np.testing.assert_array_equal(b.users.vectors, np.load(demo_dir / "user_vectors.npy"))
    for row in (0, 1, 5, 42, len(users) - 1):
        u = users[row]
        assert b.vocab["regions"][b.users.region[row]] == u["region"]
        bought = b.users.purchased[b.users.purchased_indptr[row] : b.users.purchased_indptr[row + 1]]
        assert b.items.ids[bought].tolist() == u["purchased"]
        members = b.users.memberships[b.users.memberships_indptr[row] : b.users.memberships_indptr[row + 1]]
        assert [b.vocab["brands"][k] for k in members] == u["memberships"]
        segs = {s for k, s in enumerate(b.vocab["segments"]) if (int(b.users.segments[row]) >> k) & 1}
        assert segs == set(u["segments"])
        assert b.vocab["lifecycle"][b.users.lifecycle[row]] == u["lifecycle"]
        feats = b.users.features[b.users.features_indptr[row] : b.users.features_indptr[row + 1]].tolist()
        assert feats == user_features(
            u["region"],
            u["segments"],
            u["lifecycle"],
            u["memberships"],
            [f"{k}={v}" for k, v in u["features"].items()],
        )


def test_id_lookups(built):
    b = peakrec.load_bundle(built)
    np.testing.assert_array_equal(b.item_rows(["i0000005", "nope", "i0000000"]), [5, -1, 0])
    assert b.item_rows([]).shape == (0,)
    assert b.user_row("u-zj-loyal-01") == 0 and b.user_row("missing") == -1
    assert b.region_index("CN-ZJ") == REGION_CODES.index("CN-ZJ") and b.region_index("XX") == -1


def test_loaded_arrays_are_read_only_maps(built):
    b = peakrec.load_bundle(built)
    assert isinstance(b.items.vectors, np.memmap) and not b.items.vectors.flags.writeable
    with pytest.raises(ValueError):
        b.items.stock[0] = 1
    _, rows = b.index.search(np.ascontiguousarray(b.items.vectors[:2]), 1)
    assert rows[:, 0].tolist() == [0, 1]


def test_load_follows_current(built):
    assert peakrec.load_bundle(built.parent).version == built.name


def test_flipped_byte_is_refused(built, tmp_path):
    bundle = _copy(built, tmp_path)
    path = bundle / "items" / "price.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"items/price.npy: sha256 mismatch"):
        peakrec.load_bundle(bundle)


def test_missing_and_extra_files_are_refused(built, tmp_path):
    bundle = _copy(built, tmp_path)
    (bundle / "index.faiss").unlink()
    (bundle / "stray.txt").write_text("x")
    with pytest.raises(BundleError, match="index.faiss is missing"):
        peakrec.load_bundle(bundle)


def test_wrong_schema_version_is_refused(built, tmp_path):
    bundle = _copy(built, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema_version 99 is not supported"):
        peakrec.load_bundle(bundle)


def test_interrupted_build_leaves_current_unchanged(demo_dir, tmp_path, monkeypatch):
    first = peakrec.build_bundle(**demo_inputs(demo_dir), out=tmp_path, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())

    def interrupted(index, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "_write_index", interrupted)
    with pytest.raises(KeyboardInterrupt):
        peakrec.build_bundle(**demo_inputs(demo_dir), out=tmp_path, progress=False)
    assert (tmp_path / "CURRENT").read_text().strip() == first.name
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_killed_build_leftovers_are_swept(demo_dir, tmp_path):
    stale = tmp_path / f"{build_module.TMP_PREFIX}999999999-abcdef"
    stale.mkdir()
    (stale / "half.npy").write_bytes(b"x")
    peakrec.build_bundle(**demo_inputs(demo_dir), out=tmp_path, progress=False)
    assert not stale.exists()


def test_recall_in_manifest_matches_numpy_oracle(demo_dir, tmp_path):
    bundle = peakrec.build_bundle(
        **demo_inputs(demo_dir), out=tmp_path, index_factory="IVF32,Flat", progress=False
    )
    b = peakrec.load_bundle(bundle)
    recall = b.manifest["recall"]
    assert b.manifest["index"]["factory"] == "IVF32,Flat"
    nprobe = b.manifest["index"]["search_params"]["nprobe"]
    # Oracle: the same seeded sample of users with vectors, exact top-k by numpy in float64.
    warm = np.asarray(b.users.vectors)[b.users.has_vector.astype(bool)]
    sample = np.sort(
        np.random.default_rng(0).choice(len(warm), size=min(recall["queries"], len(warm)), replace=False)
    )
    xq = warm[sample]
    scores = xq.astype(np.float64) @ np.asarray(b.items.vectors, np.float64).T
    exact = np.argsort(-scores, axis=1, kind="stable")[:, : recall["k"]]
    assert faiss.extract_index_ivf(b.index).nprobe == nprobe  # stored in index.faiss
    _, approx = b.index.search(np.ascontiguousarray(xq), recall["k"])
    oracle = np.mean(
        [len(set(a) & set(e)) / recall["k"] for a, e in zip(approx.tolist(), exact.tolist(), strict=True)]
    )
    assert recall["recall_at_k"] == pytest.approx(oracle, abs=2e-3)
    assert recall["recall_at_k"] >= recall["target"]


def test_min_recall_failure_publishes_nothing(demo_dir, tmp_path):
    config = tmp_path / "build.toml"
    config.write_text((demo_dir / "build.toml").read_text() + "\n[index]\ntarget_recall = 0.0\n")
    inputs = {**demo_inputs(demo_dir), "config": config}
    with pytest.raises(BundleError, match="below --min-recall"):
        peakrec.build_bundle(
            **inputs, out=tmp_path / "b", index_factory="IVF32,Flat", min_recall=0.999, progress=False
        )
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []


def test_cold_start_table_pools_like_the_hasher_and_beats_the_mean(built):
    b = peakrec.load_bundle(built)
    cs = b.manifest["coldstart"]
    assert (cs["n_features"], cs["input_type"], cs["alternate_sign"], cs["pooling"]) == (
        b.coldstart_table.shape[0],
        "string",
        True,
        "mean",
    )
    rows = [
        b.users.features[b.users.features_indptr[i] : b.users.features_indptr[i + 1]].tolist()
        for i in range(50)
    ]
    hasher = FeatureHasher(cs["n_features"], input_type="string", alternate_sign=True)
    table = np.ascontiguousarray(b.coldstart_table)
    pooled = hasher.pool(rows, table, mode="mean")
    oracle = mean_pooling_matrix(rows, cs["n_features"]) @ table.astype(np.float64)
    np.testing.assert_allclose(pooled, oracle, rtol=1e-4, atol=1e-5)
    assert cs["heldout_cosine"] > cs["mean_vector_cosine"]


def test_region_popular_matches_brute_force(built):
    b = peakrec.load_bundle(built)
    for code in ("BR", "CN-ZJ", "AQ"):
        r = b.region_index(code)
        sellable = [
            i
            for i in range(len(b.items.ids))
            if (int(b.items.regions[i, r // 64]) >> (r % 64)) & 1 and b.items.stock[i] > 0
        ]
        expected = sorted(sellable, key=lambda i: (-float(b.items.popularity[i]), i))[
            : b.region_popular.shape[1]
        ]
        got = [int(x) for x in b.region_popular[r] if x >= 0]
        assert got == expected, code


def test_config_overrides_from_build_toml(demo_dir, tmp_path):
    config = tmp_path / "build.toml"
    config.write_text(
        "[ranking]\nnew_item_boost = 0.4\nmax_per_brand = 2\n"
        "[ranking.lifecycle_weights.loyalty]\nrelevance = 0.6\n"
    )
    bundle = peakrec.build_bundle(
        **{**demo_inputs(demo_dir), "config": config}, out=tmp_path / "b", progress=False
    )
    cfg = peakrec.load_bundle(bundle).config
    assert cfg["ranking"]["new_item_boost"] == 0.4 and cfg["ranking"]["max_per_brand"] == 2
    assert cfg["ranking"]["lifecycle_weights"]["loyalty"]["relevance"] == 0.6
    assert cfg["ranking"]["new_item_window_days"] == 14


_ID = st.text(st.characters(blacklist_characters="\x00"), max_size=6)  # numpy <U drops trailing NULs


@given(st.lists(_ID.filter(bool), max_size=30, unique=True), st.lists(_ID, max_size=10))
def test_id_lookup_matches_a_dict(ids, queries):
    arr = np.asarray(ids, dtype=str)
    order = np.argsort(arr, kind="stable")
    got = load_module._lookup(arr[order], order, queries)
    expected = [{i: r for r, i in enumerate(ids)}.get(q, -1) for q in queries]
    assert got.tolist() == expected
