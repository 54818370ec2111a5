"""Catalogue readers and the demo generator, checked against plain-Python oracles."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL
from peakrec.catalog.demo_data import DemoSpec, generate
from peakrec.catalog.readers import read_items, read_users
from peakrec.catalog.regions import CN_PROVINCES, REGION_CODES
from peakrec.catalog.schema import expand_regions
from peakrec.errors import InvalidInputError

DEMO_FILES = (
    "items.jsonl",
    "users.jsonl",
    "item_vectors.npy",
    "user_vectors.npy",
    "heldout.jsonl",
    "queries.jsonl",
    "build.toml",
)


def _jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_region_list_has_iso_countries_and_chinese_provinces():
    assert len(REGION_CODES) >= 230
    assert {"BR", "US", "CN", "CN-ZJ", "CN-GD", "CN-GS"} <= set(REGION_CODES)
    assert len(CN_PROVINCES) == 34
    assert all(re.fullmatch(r"[A-Z]{2}(-[A-Z]{2})?", c) for c in REGION_CODES)


def test_country_covers_its_provinces_and_star_covers_all():
    assert set(expand_regions(["CN"])) == {"CN", *CN_PROVINCES}
    assert set(expand_regions(["*"])) == set(REGION_CODES)
    assert expand_regions(["BR", "CN-ZJ"]) == ["BR", "CN-ZJ"]


def test_same_seed_gives_same_bytes(tmp_path):
    spec = DemoSpec(items=300, users=60, dim=8, seed=3)
    generate(tmp_path / "a", spec)
    generate(tmp_path / "b", spec)
    for name in DEMO_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_other_seed_gives_other_catalogue(tmp_path):
    generate(tmp_path / "a", DemoSpec(items=300, users=60, dim=8, seed=3))
    generate(tmp_path / "b", DemoSpec(items=300, users=60, dim=8, seed=4))
    assert (tmp_path / "a" / "items.jsonl").read_bytes() != (tmp_path / "b" / "items.jsonl").read_bytes()


def test_demo_has_the_shoppers_the_demo_shows(demo_dir):
    users = {u["user_id"]: u for u in _jsonl(demo_dir / "users.jsonl")}
    vectors = np.load(demo_dir / "user_vectors.npy")
    rows = {u: i for i, u in enumerate(users)}
    loyal = users["u-zj-loyal-01"]
    assert loyal["region"] == "CN-ZJ" and loyal["memberships"] == ["Nike"] and loyal["lifecycle"] == "loyalty"
    for k in (1, 2, 3):
        cold = users[f"u-br-cold-{k:02d}"]
        assert cold["region"] == "BR" and cold["purchased"] == [] and cold["features"]
        assert not vectors[rows[cold["user_id"]]].any()
    small = users["u-smalltown-01"]
    assert "small-town-active-youth" in small["segments"]
    items = _jsonl(demo_dir / "items.jsonl")
    cheap = [i for i in items if "c99-free-shipping" in i["campaigns"]]
    assert cheap and all(i["price"] <= 9.9 for i in cheap)
    toml = (demo_dir / "build.toml").read_text(encoding="utf-8")
    assert 'id = "c99-free-shipping"' in toml and '"small-town-active-youth"' in toml


def test_demo_items_are_bilingual_and_varied(demo_dir):
    items = _jsonl(demo_dir / "items.jsonl")
    assert all(
        re.search(r"[\u4e00-\u9fff]", i["title"]) and re.search(r"[A-Za-z]", i["title"]) for i in items
    )
    assert any(i["category"] == "服饰>女装>连衣裙" for i in items)
    assert any("presale_start" in i for i in items) and any(i["member_only"] for i in items)
    assert any(i["regions"] == ["*"] for i in items) and any(i["stock"] == 0 for i in items)
    pop = np.sort([i["popularity"] for i in items])[::-1]
    assert pop[0] > 20 * np.median(pop)  # Zipf: a few items carry most orders


def test_heldout_purchases_are_predictable_from_user_vectors(demo_dir):
    item_vectors = np.load(demo_dir / "item_vectors.npy")
    user_vectors = np.load(demo_dir / "user_vectors.npy")
    row = {rec["item_id"]: i for i, rec in enumerate(_jsonl(demo_dir / "items.jsonl"))}
    heldout = _jsonl(demo_dir / "heldout.jsonl")
    hits = total = 0
    for u, rec in enumerate(heldout):
        if not user_vectors[u].any():
            continue
        top = set(np.argsort(-(item_vectors @ user_vectors[u]))[:100].tolist())
        hits += sum(row[i] in top for i in rec["next_purchases"])
        total += len(rec["next_purchases"])
    chance = 100 / len(item_vectors)
    assert hits / total > 4 * chance


def test_queries_name_their_targets(demo_dir):
    items = {i["item_id"]: i for i in _jsonl(demo_dir / "items.jsonl")}
    queries = _jsonl(demo_dir / "queries.jsonl")
    assert len(queries) >= 100
    for q in queries[:50]:
        brand = q["query"].split(" ")[0]
        assert q["targets"] and all(items[t]["brand"] == brand for t in q["targets"])


def test_parquet_and_jsonl_read_the_same(demo_dir, tmp_path):
    records = _jsonl(demo_dir / "items.jsonl")
    keys = list(dict.fromkeys(k for rec in records for k in rec))
    pq.write_table(
        pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records]), tmp_path / "items.parquet"
    )
    a = read_items(demo_dir / "items.jsonl", demo_dir / "item_vectors.npy")
    b = read_items(tmp_path / "items.parquet", demo_dir / "item_vectors.npy")
    for name in (
        "item_id",
        "title",
        "brand",
        "category",
        "price",
        "stock",
        "regions",
        "launch_ts",
        "presale_start",
        "presale_end",
        "member_only",
        "campaigns",
        "tags",
        "popularity",
    ):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.vectors, b.vectors)


def test_embedding_field_equals_npy_rows(demo_dir, tmp_path):
    vectors = np.load(demo_dir / "item_vectors.npy")
    with open(tmp_path / "items.jsonl", "w", encoding="utf-8") as f:
        for rec, v in zip(_jsonl(demo_dir / "items.jsonl"), vectors, strict=True):
            f.write(json.dumps({**rec, "embedding": v.tolist()}, ensure_ascii=False) + "\n")
    table = read_items(tmp_path / "items.jsonl")
    np.testing.assert_array_equal(table.vectors, vectors)


def test_users_cold_when_vector_row_is_zero(demo_dir):
    users = read_users(demo_dir / "users.jsonl", demo_dir / "user_vectors.npy", dimension=SMALL.dim)
    raw = np.load(demo_dir / "user_vectors.npy")
    np.testing.assert_array_equal(users.has_vector, np.any(raw != 0, axis=1))
    assert users.has_vector[users.user_id.index("u-br-cold-01")] == 0


def test_dates_are_parsed_as_utc(tmp_path):
    path = tmp_path / "items.jsonl"
    rec = {
        "item_id": "A",
        "title": "t",
        "brand": "b",
        "category": "a>b",
        "price": 1,
        "stock": 1,
        "regions": ["CN"],
        "launch_date": "2026-11-01",
        "presale_start": "2026-11-01T08:00:00+08:00",
        "presale_end": "2026-11-02T00:00:00Z",
        "embedding": [1.0, 0.0],
    }
    path.write_text(json.dumps(rec) + "\n")
    t = read_items(path)
    assert t.launch_ts == [1793491200]  # 2026-11-01T00:00Z
    assert t.presale_start == [1793491200] and t.presale_end == [1793491200 + 86400]


def test_feature_dict_becomes_key_value_strings(tmp_path):
    path = tmp_path / "users.jsonl"
    path.write_text(
        json.dumps({"user_id": "u", "region": "BR", "features": {"device": "ios", "vip": True}}) + "\n"
    )
    assert read_users(path).features == [["device=ios", "vip=true"]]


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"user_id": "u", "region": "XX"}', 'users.jsonl line 1: field "region": unknown region code "XX"'),
        ('{"user_id": "u", "region": "BR", "lifecycle": "bored"}', 'field "lifecycle" must be one of'),
        ('{"region": "BR"}', 'users.jsonl line 1: missing required field "user_id"'),
        ('{"user_id": "u", "region": "BR", "features": ["novalue"]}', 'must be "key=value"'),
    ],
)
def test_bad_user_records(tmp_path, text, message):
    path = tmp_path / "users.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        read_users(path)
