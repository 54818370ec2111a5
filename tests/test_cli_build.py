"""The `peakrec demo-data`, `build` and `inspect` commands, and every bad input of issue 4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from peakrec.cli import main


def _item(i: int, **over) -> dict:
    rec = {
        "item_id": f"A{i}",
        "title": f"Nike 女款 跑步鞋 Air Zoom running shoes {i}",
        "brand": "Nike",
        "category": "运动户外>跑步鞋",
        "price": 599.0,
        "stock": 5,
        "regions": ["CN", "BR"],
        "launch_date": "2026-11-01",
        "embedding": [1.0, float(i), 0.5],
    }
    rec.update(over)
    return rec


def _user(i: int, **over) -> dict:
    rec = {
        "user_id": f"u{i}",
        "region": "CN-ZJ",
        "segments": ["brand-loyalist"],
        "memberships": ["Nike"],
        "purchased": ["A1"],
        "features": {"device": "ios"},
        "embedding": [0.1, 0.2, float(i)],
    }
    rec.update(over)
    return rec


def _write(path: Path, records: list) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write((rec if isinstance(rec, str) else json.dumps(rec, ensure_ascii=False)) + "\n")
    return path


def _build(tmp_path: Path, items: list, users: list | None = None, *extra: str) -> int:
    _write(tmp_path / "items.jsonl", items)
    _write(tmp_path / "users.jsonl", users if users is not None else [_user(i) for i in range(3)])
    return main(
        [
            "build",
            "--items",
            str(tmp_path / "items.jsonl"),
            "--users",
            str(tmp_path / "users.jsonl"),
            "--out",
            str(tmp_path / "bundles"),
            "--quiet",
            *extra,
        ]
    )


def test_demo_data_build_inspect(tmp_path, capsys):
    demo, bundles = tmp_path / "demo", tmp_path / "bundles"
    assert (
        main(
            [
                "demo-data",
                "--items",
                "1500",
                "--users",
                "300",
                "--dim",
                "16",
                "--seed",
                "5",
                "--out",
                str(demo),
            ]
        )
        == 0
    )
    assert "1500 items, 300 users" in capsys.readouterr().out
    args = [
        "build",
        "--items",
        str(demo / "items.jsonl"),
        "--users",
        str(demo / "users.jsonl"),
        "--item-vectors",
        str(demo / "item_vectors.npy"),
        "--user-vectors",
        str(demo / "user_vectors.npy"),
        "--config",
        str(demo / "build.toml"),
        "--out",
        str(bundles),
        "--quiet",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "items 1,500" in out and "recall@100 1.0000" in out and "CURRENT ->" in out
    assert main(["inspect", str(bundles)]) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)  # stdout is JSON only
    assert shown["schema_version"] == 1 and shown["verification"]["ok"] is True
    assert captured.err.rstrip().endswith("files verified")


def test_demo_data_parquet_builds(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert (
        main(
            [
                "demo-data",
                "--items",
                "300",
                "--users",
                "50",
                "--dim",
                "8",
                "--format",
                "parquet",
                "--out",
                str(demo),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "build",
                "--items",
                str(demo / "items.parquet"),
                "--users",
                str(demo / "users.parquet"),
                "--item-vectors",
                str(demo / "item_vectors.npy"),
                "--user-vectors",
                str(demo / "user_vectors.npy"),
                "--out",
                str(tmp_path / "b"),
                "--quiet",
            ]
        )
        == 0
    )


def test_inspect_fails_on_a_flipped_byte(tmp_path, capsys):
    assert _build(tmp_path, [_item(i) for i in range(5)]) == 0
    bundles = tmp_path / "bundles"
    bundle = bundles / (bundles / "CURRENT").read_text().strip()
    path = bundle / "items" / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["inspect", str(bundle)]) == 1
    captured = capsys.readouterr()
    verification = json.loads(captured.out)["verification"]
    assert verification["ok"] is False
    assert verification["problems"][0].startswith("items/vectors.npy: sha256 mismatch")
    assert "FAILED items/vectors.npy: sha256 mismatch" in captured.err


BAD_ITEMS = {
    "duplicate id": (
        [_item(1), _item(2), _item(1)],
        'items.jsonl line 3: item_id "A1" appears twice (first on line 1)',
    ),
    "missing field": (
        [_item(1), {k: v for k, v in _item(2).items() if k != "brand"}],
        'items.jsonl line 2: missing required field "brand"',
    ),
    "nan vector": (
        [_item(1), _item(2, embedding=[1.0, float("nan"), 0.0])],
        'items.jsonl line 2: field "embedding" has a NaN or infinite value',
    ),
    "inf vector": (
        [_item(1, embedding=[1.0, float("inf"), 0.0])],
        'items.jsonl line 1: field "embedding" has a NaN or infinite value',
    ),
    "wrong dimension": (
        [_item(1), _item(2), _item(3, embedding=[1.0, 2.0])],
        'items.jsonl line 3: field "embedding" has dimension 2, expected 3',
    ),
    "unknown region": (
        [_item(1), _item(2, regions=["CN", "XX"])],
        'items.jsonl line 2: field "regions": unknown region code "XX"',
    ),
    "negative stock": (
        [_item(1, stock=-1)],
        'items.jsonl line 1: field "stock" must not be negative, got -1',
    ),
    "negative price": (
        [_item(1), _item(2, price=-9.9)],
        'items.jsonl line 2: field "price" must not be negative, got -9.9',
    ),
    "malformed json": (
        [_item(1), '{"item_id": "A2", "title": '],
        "items.jsonl line 2: malformed JSON: Expecting value",
    ),
    "empty catalogue": ([], "items.jsonl: no items (empty catalogue)"),
    "not an object": (["[1, 2]"], "items.jsonl line 1: expected a JSON object"),
    "bad date": (
        [_item(1, launch_date="11/11/2026")],
        "items.jsonl line 1: field \"launch_date\" must be an ISO date or unix seconds, got '11/11/2026'",
    ),
    "presale backwards": (
        [_item(1, presale_start="2026-11-11", presale_end="2026-11-01")],
        'items.jsonl line 1: field "presale_end" must be after "presale_start"',
    ),
    "nan price": (
        [_item(1, price=float("nan"))],
        'items.jsonl line 1: field "price" must be finite, got nan',
    ),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_bad_items_fail_with_one_line_and_publish_nothing(tmp_path, capsys, case):
    items, message = BAD_ITEMS[case]
    assert _build(tmp_path, items) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "bundles").exists() or not any((tmp_path / "bundles").iterdir())


def test_bad_user_vector_dimension(tmp_path, capsys):
    assert _build(tmp_path, [_item(1), _item(2)], [_user(1), _user(2, embedding=[1.0, 2.0, 3.0, 4.0])]) == 1
    assert 'users.jsonl line 2: field "embedding" has dimension 4, expected 3' in capsys.readouterr().err


def test_npy_row_count_mismatch(tmp_path, capsys):
    np.save(tmp_path / "vectors.npy", np.ones((4, 3), np.float32))
    items = [{k: v for k, v in _item(i).items() if k != "embedding"} for i in range(5)]
    assert _build(tmp_path, items, None, "--item-vectors", str(tmp_path / "vectors.npy")) == 1
    assert "vectors.npy: has 4 rows but items.jsonl has 5 records" in capsys.readouterr().err


def test_npy_nan_row(tmp_path, capsys):
    vectors = np.ones((5, 3), np.float32)
    vectors[3, 1] = np.nan
    np.save(tmp_path / "vectors.npy", vectors)
    assert (
        _build(tmp_path, [_item(i) for i in range(5)], None, "--item-vectors", str(tmp_path / "vectors.npy"))
        == 1
    )
    assert "vectors.npy row 3: NaN or infinite value in the vector" in capsys.readouterr().err


def test_npy_wrong_dimension_for_users(tmp_path, capsys):
    np.save(tmp_path / "uv.npy", np.ones((3, 7), np.float32))
    assert (
        _build(tmp_path, [_item(i) for i in range(5)], None, "--user-vectors", str(tmp_path / "uv.npy")) == 1
    )
    assert "uv.npy: user embedding dimension 7 does not match items' 3" in capsys.readouterr().err


def test_bad_config_key(tmp_path, capsys):
    (tmp_path / "build.toml").write_text("[ranking]\nnew_item_bost = 1.0\n")
    assert _build(tmp_path, [_item(1)], None, "--config", str(tmp_path / "build.toml")) == 1
    assert 'build.toml [ranking]: unknown key "new_item_bost"' in capsys.readouterr().err


def test_bad_factory_string(tmp_path, capsys):
    assert _build(tmp_path, [_item(i) for i in range(5)], None, "--index-factory", "Nonsense42") == 1
    assert 'index factory "Nonsense42" is not valid' in capsys.readouterr().err


def test_unknown_purchases_are_dropped_and_counted(tmp_path, capsys):
    users = [_user(1, purchased=["A1", "GONE"]), _user(2)]
    assert _build(tmp_path, [_item(1), _item(2)], users) == 0
    bundles = tmp_path / "bundles"
    manifest = json.loads((bundles / (bundles / "CURRENT").read_text().strip() / "manifest.json").read_text())
    assert manifest["counts"]["purchases_unknown_item"] == 1


def test_catalogue_without_users_builds_with_item_queries(tmp_path, capsys):
    assert _build(tmp_path, [_item(i) for i in range(5)], []) == 0
    assert "recall@5 1.0000 on 5 items queries" in capsys.readouterr().out
