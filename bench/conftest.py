"""Shared helpers: every figure is a ratio against a baseline measured in the same run."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# The test-only modules (synthetic catalogues, numpy references) live in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

RATIOS: list[tuple[str, float, float | None]] = []


def median_seconds(fn: Callable[[], object], rounds: int = 5) -> float:
    """Median wall time of `fn` over `rounds` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record_ratio(benchmark, name: str, baseline_seconds: float, target: float | None = None) -> float:
    """Stores baseline/ours (higher is better) in the benchmark's extra_info and the summary."""
    ours = benchmark.stats.stats.median
    ratio = baseline_seconds / ours
    benchmark.extra_info.update(
        {"baseline_median_s": baseline_seconds, "ratio": round(ratio, 2), "target_ratio": target}
    )
    RATIOS.append((name, ratio, target))
    return ratio


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    if not RATIOS:
        return
    terminalreporter.section("ratios against same-run baselines (higher is better)")
    for name, ratio, target in RATIOS:
        verdict = (
            "" if target is None else ("  meets target" if ratio >= target else f"  BELOW target {target}")
        )
        terminalreporter.write_line(f"{name:<60} {ratio:8.2f}x{verdict}")
