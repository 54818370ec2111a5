"""Search RPC cost beside Storefront's: one real demo bundle (`peakrec demo-data` -> `peakrec build`,
text index and token table included), the real engine, the load generator of test_bench_service.py
(64 requests in flight over 8 connections). Both RPCs ask for a page of 20 for the same shoppers;
Search cycles through the generator's queries (Chinese and English, brand + attribute + category).

Each figure: QPS, p50/p99 client latency, server CPU-µs per request; the ratio Search / Storefront
in server CPU is recorded. Size: PEAKREC_BENCH_SEARCH_ITEMS (default 200_000, the demo size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peakrec.v1 import recommender_pb2 as pb  # noqa: E402
from peakrec.v1 import recommender_pb2_grpc as pb_grpc  # noqa: E402
from service_harness import Server, channel  # noqa: E402
from test_bench_service import ADMIT_ALL, IN_FLIGHT, SECONDS, WORKERS, run_load  # noqa: E402

ITEMS = int(os.environ.get("PEAKREC_BENCH_SEARCH_ITEMS", "200000"))
USERS = ITEMS // 4
PAGE = 20


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "peakrec.cli", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def demo() -> tuple[Path, Path]:
    """Built once per size and kept under .benchmarks/."""
    root = Path(__file__).resolve().parents[1] / ".benchmarks" / f"search-{ITEMS}"
    data, bundles = root / "data", root / "bundles"
    if not (bundles / "CURRENT").exists():
        started = time.perf_counter()
        _cli("demo-data", "--items", str(ITEMS), "--users", str(USERS), "--out", str(data))
        _cli(
            "build", "--items", str(data / "items.jsonl"), "--users", str(data / "users.jsonl"),
            "--item-vectors", str(data / "item_vectors.npy"),
            "--user-vectors", str(data / "user_vectors.npy"),
            "--config", str(data / "build.toml"), "--quiet", "--out", str(bundles),
        )  # fmt: skip
        print(f"\nbuilt the {ITEMS}-item demo bundle in {time.perf_counter() - started:.0f}s")
    return data, bundles


def _shoppers(data: Path, n: int) -> list[pb.Shopper]:
    with open(data / "users.jsonl", encoding="utf-8") as f:
        ids = [json.loads(line)["user_id"] for _, line in zip(range(2000), f, strict=False)]
    rng = np.random.default_rng(1)
    return [pb.Shopper(user_id=ids[i]) for i in rng.integers(0, len(ids), n)]


def _queries(data: Path) -> list[str]:
    with open(data / "queries.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["query"] for line in f]


def test_search_rpc_cost_beside_storefront(benchmark, demo):
    data, bundles = demo
    shoppers = _shoppers(data, 4096)
    queries = _queries(data)
    page = pb.PageRequest(page_size=PAGE)
    storefront = [pb.StorefrontRequest(shopper=s, page=page) for s in shoppers]
    search = [
        pb.SearchRequest(query=queries[i % len(queries)], shopper=s, page=page)
        for i, s in enumerate(shoppers)
    ]
    results: dict[str, dict[str, float]] = {}

    def measure() -> None:
        server = Server(bundles, workers=WORKERS, args=ADMIT_ALL)
        with server:
            stub = pb_grpc.RecommenderStub(channel(server.target))
            # Correctness first: full pages, and the search page is the in-process engine's page.
            assert len(stub.Storefront(storefront[0], timeout=30).item_ids) == PAGE
            probe = stub.Search(search[0], timeout=30)
            assert len(probe.item_ids) == PAGE and not probe.degraded
            results["storefront"] = run_load(server, storefront, SECONDS, "Storefront")
            results["search"] = run_load(server, search, SECONDS, "Search")

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = results["search"]["server_cpu_us"] / results["storefront"]["server_cpu_us"]
    benchmark.extra_info.update({k: {m: round(v, 3) for m, v in r.items()} for k, r in results.items()})
    benchmark.extra_info["search_over_storefront_cpu"] = round(ratio, 3)
    print(f"\n{ITEMS} demo items, {WORKERS} workers, {IN_FLIGHT} in flight, {SECONDS:g}s each, page {PAGE}")
    print(f"{'':12}{'QPS':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU-us/req':>12}")
    for name, r in results.items():
        print(f"{name:12}{r['qps']:8.0f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}{r['server_cpu_us']:12.0f}")
    print(f"Search / Storefront server CPU = {ratio:.2f}")
