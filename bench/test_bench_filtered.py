"""Filtered retrieval across selectivities: peakrec against the exact and FAISS peers in one run.

    PEAKREC_BENCH_ITEMS=1000000 .venv/bin/python -m pytest bench/test_bench_filtered.py \
        --benchmark-only -q -s

Items x 64 dims (``PEAKREC_BENCH_ITEMS``, default 200,000; the issue's figures are at 1,000,000)
from ``faiss.contrib.datasets.SyntheticDataset`` (inner product), top-100, one thread. Eligibility
is a share of rows set through the live ``available`` column (random rows, or the 1% farthest from
the queries), and every engine sees exactly that set.

* ``peakrec``: ``retrieve`` with the kept eligibility of the item state and the inverted lists, as
  ``Recommender`` serves a bundle: the rows are numbered list by list, and the lists, their probe
  factors and the plan's crossings are built and measured as ``peakrec build`` does
  (``retrieval.lists``, ``retrieval.plan``; cached under ~/.cache/peakrec-bench with the
  indexes), on the data set's other queries, for recall 0.96. efSearch 256, which this synthetic
  set needs for recall 0.95 unfiltered. Every engine searches the same renumbered rows.
* ``exact-known``: a numpy gather + matmul over the eligible rows, known in advance;
* ``hnsw``: FAISS HNSW32 under an ``IDSelectorBitmap``, at the smallest efSearch of 64..2048 that
  reaches recall 0.95 with full pages on the first 20 queries;
* ``ivf``: FAISS IVF (nlist ~4 sqrt(n)) under an ``IDSelectorBitmap``, at the smallest nprobe
  of 16..nlist that does;
* ``peakrec-unkept``: ``retrieve`` without kept sets or lists (the path before issue 14).

Each engine runs over all queries, three rounds in rotated order, and keeps its fastest round
(the noise of this shared machine spoils a round, not a figure). Each engine's recall@100 and
short pages are checked against brute force over the eligible rows;
peakrec must reach recall 0.95 with no short page and no ineligible row. The table printed at
the end gives queries/s (and p50 / p99 latency for peakrec and the best peer) per engine, and
peakrec's ratio to the fastest peer that keeps that promise.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from faiss.contrib.datasets import SyntheticDataset
from peakrec import _core
from peakrec.config import RetrievalConfig
from peakrec.retrieval.hnsw import half_vectors
from peakrec.retrieval.kept import bitset_words
from peakrec.retrieval.lists import ItemLists, build_lists, measure_factors, parse_factors
from peakrec.retrieval.plan import measure_plan
from peakrec.retrieval.search import bitmap_selector, exact_search, retrieve
from peakrec.state import ItemState
from synthetic import NOW, open_catalog

N = int(os.environ.get("PEAKREC_BENCH_ITEMS", "200000"))
N_QUERIES = int(os.environ.get("PEAKREC_BENCH_QUERIES", "100"))
K = 100
DIM = 64
EF_SEARCH = 256
RECALL = 0.95
BUILD_RECALL = 0.96  # the build's target for the lists and the plan: a margin over RECALL
SEED = 3
CACHE = Path.home() / ".cache" / "peakrec-bench"
CASES = ["0.1%", "1%", "10%", "50%", "100%", "1% far"]
SHARES = {"0.1%": 0.001, "1%": 0.01, "10%": 0.1, "50%": 0.5, "100%": 1.0, "1% far": 0.01}
REGIONS_ALL = np.full((N, 2), ~np.uint64(0), np.uint64)  # open_catalog's: every item sold everywhere
HNSW_EF = (64, 128, 256, 512, 1024, 2048)
TABLE: dict[str, dict] = {}


def _index(name: str, factory: str, vectors: np.ndarray) -> faiss.Index:
    path = CACHE / f"filtered-{name}-s{SEED}-{N}-{DIM}.faiss"
    if path.exists():
        return faiss.read_index(str(path))
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors[: min(len(vectors), 256 * 4096)])
    index.add(vectors)
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path) + ".tmp")
    Path(str(path) + ".tmp").rename(path)
    return index


def _partition(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``build_lists``'s partition of the data set (cached): centroids, offsets, order."""
    path = CACHE / f"filtered-listed-s{SEED}-{N}-{DIM}.npz"
    if not path.exists():
        centroids, offsets, order = build_lists(vectors)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(str(path) + ".tmp.npz", centroids=centroids, offsets=offsets, order=order)
        Path(str(path) + ".tmp.npz").rename(path)
    arrays = np.load(path)
    return arrays["centroids"], arrays["offsets"], arrays["order"]


def _plan(vectors, half, lists, calibration, hnsw, config) -> tuple[ItemLists, RetrievalConfig, dict]:
    """The factors and plan a bundle build measures on these vectors (cached)."""
    path = CACHE / f"filtered-listed-s{SEED}-{N}-{DIM}.plan.json"
    if path.exists():
        plan = json.loads(path.read_text())
    else:
        factors = measure_factors(lists, vectors, calibration, K, BUILD_RECALL)
        plan = {"factors": factors}
        lists_at = ItemLists(lists, tuple(factors))
        plan.update(
            measure_plan(hnsw, vectors, lists_at, calibration[:32], K, config, BUILD_RECALL, half=half)
        )
        path.write_text(json.dumps(plan))
    factors = parse_factors(plan["factors"])
    return ItemLists(lists, factors), config.with_search_params(None, plan), plan


@pytest.fixture(scope="module")
def world():
    # The data set of bench/test_bench_pipeline.py and measure_retrieval.py (seed 3, 200 queries):
    # the first N_QUERIES are timed, the last 64 calibrate the lists (as a build's sample would).
    ds = SyntheticDataset(DIM, 0, N, 200, metric="IP", seed=SEED)
    vectors = np.ascontiguousarray(ds.get_database(), dtype=np.float32)
    centroids, offsets, order = _partition(vectors)
    vectors = np.ascontiguousarray(vectors[order])  # rows numbered list by list, as a build does
    all_queries = np.ascontiguousarray(ds.get_queries(), dtype=np.float32)
    queries = all_queries[: min(N_QUERIES, 136)]
    hnsw = _index("hnsw32-listed", "HNSW32,Flat", vectors)
    nlist = 1 << round(math.log2(4 * math.sqrt(N)))
    ivf = _index(f"ivf{nlist}-listed", f"IVF{nlist},Flat", vectors)
    faiss.omp_set_num_threads(1)  # searched on one thread, as a serving worker does
    half = half_vectors(hnsw)  # what a bundle's index_half holds
    core = _core.InvertedLists(centroids, offsets, N)
    config = RetrievalConfig(ef_search=EF_SEARCH)
    lists, config, plan = _plan(vectors, half, core, all_queries[-64:], hnsw, config)
    print(f"\nlists: {len(core)}, plan {plan}")
    yield vectors, half, queries, hnsw, ivf, open_catalog(N), lists, config
    _print_table(plan)


def _eligible(case: str, vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    share = SHARES[case]
    if case.endswith("far"):
        # The items least like the queries as a whole: the graph walk starts far from all of them.
        closeness = vectors @ queries.mean(axis=0)
        return np.sort(np.argpartition(closeness, int(share * N))[: int(share * N)])
    return np.flatnonzero(np.random.default_rng(11).random(N) < share)


def _run(engine, queries) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-query seconds and results."""
    seconds, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(engine(q[None]))
        seconds.append(time.perf_counter() - start)
    return np.array(seconds), results


def _race(engines: dict, queries, rounds: int = 3) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """Per engine, seconds per query and results of its fastest round: each round runs every
    engine over all queries in turn (its caches warm, as ANN benchmarks do), in a rotated order,
    so that a noisy moment on this shared machine spoils one round of an engine, not its figure."""
    names = list(engines)
    best: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds, results = _run(engines[name], queries)
            if name not in best or seconds.sum() < best[name][0].sum():
                best[name] = (seconds, results)
    return best


def _quality(results, truth, need) -> tuple[float, bool]:
    recall = np.mean(
        [len(np.intersect1d(t, r[:K])) / max(len(t), 1) for r, t in zip(results, truth, strict=True)]
    )
    short = any(len(r) < need for r in results)
    return float(recall), short


def _smallest_good(make, values, queries, truth, need):
    """The first of ``values`` whose engine ``make(value)`` keeps the promise on 20 queries."""
    for value in values:
        engine = make(value)
        _, results = _run(engine, queries[:20])
        recall, short = _quality(results, truth[:20], need)
        if recall >= RECALL and not short:
            return value, engine
    return values[-1], make(values[-1])


@pytest.mark.parametrize("case", CASES)
def test_filtered_retrieval_against_peers(benchmark, world, case):
    vectors, half, queries, hnsw, ivf, catalog, lists, config = world
    eligible = _eligible(case, vectors, queries)
    state = ItemState.from_arrays(np.full(N, 5, np.int32), np.ones(N, np.float32))
    state.available[:] = np.isin(np.arange(N), eligible)  # before the kept sets are first built
    rules = _core.Rules(state.stock, state.price, state.available, 0, NOW)
    truth = [exact_search(vectors, eligible, q[None], K)[0] for q in queries]
    need = min(K, len(eligible))
    mask = np.zeros(N, bool)
    mask[eligible] = True
    words = bitset_words(mask)
    selector, _keep = bitmap_selector(words, N)
    kept = state.keep(REGIONS_ALL)
    strategies: list[str] = []

    def ours(q):
        got = retrieve(hnsw, vectors, catalog, rules, q, K, config, kept=kept, lists=lists, half=half)
        strategies.append(got.strategy)
        return got.rows

    def hnsw_at(ef):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        return lambda q: _faiss(hnsw, q, params)

    def ivf_at(nprobe):
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        return lambda q: _faiss(ivf, q, params)

    ef, hnsw_engine = _smallest_good(hnsw_at, HNSW_EF, queries, truth, need)
    nprobes = [p for p in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if p < ivf.nlist] + [ivf.nlist]
    nprobe, ivf_engine = _smallest_good(ivf_at, nprobes, queries, truth, need)
    engines = {
        "peakrec": ours,
        "peakrec-unkept": lambda q: retrieve(hnsw, vectors, catalog, rules, q, K, config).rows,
        "exact-known": lambda q: exact_search(vectors, eligible, q, K)[0],
        f"hnsw ef{ef}": hnsw_engine,
        f"ivf nprobe{nprobe}": ivf_engine,
    }
    for engine in engines.values():
        _run(engine, queries[:3])  # warm-up
    strategies.clear()
    timed = _race(engines, queries)
    row = {}
    for name, (seconds, results) in timed.items():
        recall, short = _quality(results, truth, need)
        row[name] = {
            "qps": len(queries) / seconds.sum(),
            "p50": float(np.median(seconds)),
            "p99": float(np.quantile(seconds, 0.99)),
            "recall": recall,
            "short": short,
        }
    ours_results = timed["peakrec"][1]
    row["peakrec"]["plan"] = max(set(strategies), key=strategies.count)
    TABLE[case] = row
    assert all(mask[r].all() for r in ours_results), f"peakrec returned an ineligible row at {case}"
    assert not row["peakrec"]["short"], f"peakrec returned a short page at {case}"
    assert row["peakrec"]["recall"] >= RECALL, f"peakrec recall {row['peakrec']['recall']:.3f} at {case}"
    benchmark.pedantic(lambda: _run(ours, queries), rounds=1)
    best = _best_peer(row)
    if best is not None:
        benchmark.extra_info["qps_over_best_peer"] = round(row["peakrec"]["qps"] / row[best]["qps"], 3)
    benchmark.extra_info["qps"] = {k: round(v["qps"]) for k, v in row.items()}
    benchmark.extra_info["p99_over_p50"] = round(row["peakrec"]["p99"] / row["peakrec"]["p50"], 2)


def _faiss(index, q, params) -> np.ndarray:
    _, rows = index.search(q, K, params=params)
    rows = rows[0]
    return rows[rows >= 0]


def _best_peer(row: dict) -> str | None:
    peers = [
        n for n, v in row.items() if not n.startswith("peakrec") and v["recall"] >= RECALL and not v["short"]
    ]
    return max(peers, key=lambda n: row[n]["qps"], default=None)


def _print_table(plan: dict) -> None:
    if not TABLE:
        return
    print(f"\nfiltered retrieval, {N} x {DIM}, top-{K}, {N_QUERIES} queries, one thread; plan {plan}")
    print("queries/s (recall@100); p50 / p99 ms for peakrec and the best peer (recall >= 0.95, full pages)")
    columns = (
        "peakrec | plan | p50 / p99 | unkept | exact-known | FAISS HNSW | FAISS IVF | best peer | p50 / p99"
    )
    print(f"| eligible | {columns} | peakrec / best |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for case in CASES:
        row = TABLE.get(case)
        if row is None:
            continue
        cell, lat = _cell(row), _latency(row)
        names = list(row)
        hnsw_name = next(n for n in names if n.startswith("hnsw"))
        ivf_name = next(n for n in names if n.startswith("ivf"))
        best = _best_peer(row)
        ratio = f"{row['peakrec']['qps'] / row[best]['qps']:.2f}" if best else "-"
        print(
            f"| {case} | {cell('peakrec')} | {row['peakrec']['plan']} | {lat('peakrec')} "
            f"| {cell('peakrec-unkept')} "
            f"| {cell('exact-known')} | {hnsw_name}: {cell(hnsw_name)} | {ivf_name}: {cell(ivf_name)} "
            f"| {best or '-'} | {lat(best) if best else '-'} | {ratio} |"
        )


def _cell(row: dict):
    def cell(name: str) -> str:
        v = row[name]
        return f"{v['qps']:,.0f} ({v['recall']:.3f}{', short' if v['short'] else ''})"

    return cell


def _latency(row: dict):
    def lat(name: str) -> str:
        return f"{row[name]['p50'] * 1e3:.2f} / {row[name]['p99'] * 1e3:.2f}"

    return lat
