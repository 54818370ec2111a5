"""scripts/bench_report.py: the README performance table and the plot come from the pytest-benchmark
JSON of `make bench`, for both ways the benchmarks record their same-run baseline."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_report.py"
spec = importlib.util.spec_from_file_location("bench_report", SCRIPT)
bench_report = importlib.util.module_from_spec(spec)
sys.modules["bench_report"] = bench_report  # dataclasses look their module up there
spec.loader.exec_module(bench_report)

REPORT = {
    "datetime": "2026-12-03T07:30:00.000000+00:00",
    "machine_info": {"python_version": "3.11.7", "cpu": {"brand_raw": "Test CPU"}},
    "commit_info": {"id": "0123456789abcdef"},
    "benchmarks": [
        {  # bench/conftest.py record_ratio: baseline_median_s, ratio = baseline / ours
            "name": "test_transform_vs_sklearn[1-thread]",
            "group": None,
            "stats": {"median": 0.020},
            "extra_info": {"baseline_median_s": 0.470, "ratio": 23.5, "target_ratio": 20},
        },
        {  # bench/test_bench_pipeline.py _record: paired medians in µs, ratio = ours / baseline
            "name": "test_rust_filter_rank_brand_cap_vs_numpy",
            "group": None,
            "stats": {"median": 41e-6},
            "extra_info": {
                "numpy_median_us": 180.0,
                "ours_paired_median_us": 40.0,
                "ratio": 40 / 180,
                "numpy_cpu_median_us": 170.0,
                "ours_cpu_median_us": 38.0,
                "cpu_ratio": 38 / 170,
            },
        },
        {  # bench/test_bench_service.py: figures, no single baseline
            "name": "test_service_cost_against_empty_rpc_and_bare_faiss",
            "group": None,
            "stats": {"median": 30.0},
            "extra_info": {
                "a_empty": {"qps": 4000.0},
                "storefront_over_faiss_beyond_rpc": 0.75,
                "cores_per_100k_storefront_qps": 115.0,
            },
        },
    ],
}


def test_rows_turn_both_baseline_shapes_into_speedups():
    hashing, filtering, service = bench_report.rows_of(REPORT)
    assert hashing.speedup == pytest.approx(23.5) and hashing.target == 20
    assert filtering.baseline == "numpy" and filtering.speedup == pytest.approx(4.5)
    assert service.speedup is None
    assert service.figures == {
        "storefront_over_faiss_beyond_rpc": 0.75,
        "cores_per_100k_storefront_qps": 115.0,
    }


def test_table_lines():
    lines = bench_report.table(REPORT).splitlines()
    assert "2026-12-03T07:30" in lines[0] and "0123456789" in lines[0] and "Test CPU" in lines[0]
    assert (
        lines[4] == "| `test_transform_vs_sklearn[1-thread]` | 20 ms | baseline 470 ms | 23.50x | 20x | - |"
    )
    assert lines[5] == "| `test_rust_filter_rank_brand_cap_vs_numpy` | 40 µs | numpy 180 µs | 4.50x | - | - |"
    assert lines[6].endswith(
        "| - | - | storefront_over_faiss_beyond_rpc 0.75, cores_per_100k_storefront_qps 115 |"
    )


def test_readme_block_is_replaced_and_the_rest_kept(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench_report.BEGIN}\nold table\n{bench_report.END}\nafter\n")
    data = tmp_path / "latest.json"
    data.write_text(json.dumps(REPORT))
    assert bench_report.main([str(data), "--readme", str(readme)]) == 0
    once = readme.read_text()
    assert "old table" not in once and "23.50x" in once
    assert once.startswith("# x\n\nbefore\n") and once.endswith(f"{bench_report.END}\nafter\n")
    bench_report.main([str(data), "--readme", str(readme)])
    assert readme.read_text() == once  # idempotent


def test_readme_without_markers_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="bench-table"):
        bench_report.replace_block("no markers here", "table")


PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_are_pngs(tmp_path: Path):
    data = tmp_path / "latest.json"
    data.write_text(json.dumps(REPORT))
    assert bench_report.main([str(data), "--plots", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "speedups.png").read_bytes()[:8] == PNG
    assert not (tmp_path / "plots" / "groups.png").exists()  # no group has peers


def test_groups_with_peers_are_drawn_side_by_side(tmp_path: Path):
    peers = [
        {
            "name": name,
            "group": "hash",
            "stats": {"median": m, "min": m * 0.9, "max": m * 1.2},
            "extra_info": {},
        }
        for name, m in (("test_transform[1-thread]", 0.02), ("test_sklearn_transform_peer", 0.47))
    ]
    alone = {"name": "test_other", "group": "solo", "stats": {"median": 1.0, "min": 1.0, "max": 1.0}}
    path = tmp_path / "groups.png"
    assert bench_report.groups_plot({"benchmarks": [*peers, alone]}, path)
    assert path.read_bytes()[:8] == PNG


def test_the_readme_has_the_block():
    readme = (SCRIPT.parent.parent / "README.md").read_text()
    assert readme.count(bench_report.BEGIN) == 1 and readme.count(bench_report.END) == 1
