"""Prometheus metrics of a worker. Workers write them in prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by the supervisor) and the supervisor serves the sum of all workers."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0)

REQUESTS = Counter("peakrec_requests", "RPCs answered, by method and status code", ["method", "code"])
LATENCY = Histogram(
    "peakrec_request_seconds", "Server time per RPC, by method", ["method"], buckets=LATENCY_BUCKETS
)
STAGE = Histogram(
    "peakrec_stage_seconds",
    "Pipeline time per stage, by method",
    ["method", "stage"],
    buckets=LATENCY_BUCKETS,
)
DEGRADED = Counter("peakrec_degraded", "Pages answered degraded (deadline short), by method", ["method"])
SHED = Counter(
    "peakrec_shed",
    "RPCs refused without running them, by method and reason: concurrency (grpcio's limit), queue "
    "(waited too long when overloaded), deadline (passed or too short), draining",
    ["method", "reason"],
)
BUNDLE = Gauge(
    "peakrec_bundle_info",
    "1 for the bundle version a worker serves",
    ["version"],
    multiprocess_mode="liveall",
)
ITEM_UPDATES = Counter("peakrec_item_updates", "Item updates journaled and applied")


def multiprocess_registry(directory: Path) -> CollectorRegistry:
    """A registry that sums the files every worker writes under ``directory``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return registry


def mark_worker_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
