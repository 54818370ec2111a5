"""Where the retrieval plans cross, measured on a bundle's own vectors and index.

``retrieve`` chooses its plan from the count of kept rows (``retrieval.search``): scan them below
``scan_max_share`` of the items, probe the inverted lists below ``lists_max_share``, walk the
graph (or search the ANN index) above. Where each plan wins depends on the vectors, the index
and the machine, so the build times all three at a ladder of randomly kept shares and stores the
crossings in the manifest (``lists.plan``), the way it measures ``efSearch``.
"""

from __future__ import annotations

import math
import time

import faiss
import numpy as np

from peakrec import _core
from peakrec.config import RetrievalConfig
from peakrec.retrieval.kept import KeptEligibility
from peakrec.retrieval.lists import ItemLists, open_catalog
from peakrec.retrieval.search import retrieve

SHARES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
PLANS = ("exact", "lists", "ann")
MARGIN = 0.9


def measure_plan(
    index: faiss.Index,
    vectors: np.ndarray,
    lists: ItemLists,
    queries: np.ndarray,
    k: int,
    config: RetrievalConfig,
    target: float,
    half: np.ndarray | None = None,
    seed: int = 5,
) -> dict[str, float]:
    """``{"scan_max_share", "lists_max_share"}``: below the first, scanning the kept rows was the
    fastest plan (median time per query over ``queries`` float32[q, d], top ``k``); from there to
    the second, probing the lists; above, the ANN plan. A plan wins a share only when it also
    reached recall@k >= ``target`` there against the exact scan. Each crossing is the
    geometric mean of the two measured shares around it. ``half``: the half-precision vectors that
    serving reads (``retrieve``'s)."""
    n = len(vectors)
    catalog = open_catalog(n)
    regions = np.full((n, 1), ~np.uint64(0), np.uint64)
    stock, price = np.ones(n, np.int32), np.ones(n, np.float32)
    rng = np.random.default_rng(seed)
    best: list[tuple[float, str]] = []
    for share in SHARES:
        available = (rng.random(n) < share).astype(np.uint8)
        if available.sum() < 4 * k:
            continue
        rules = _core.Rules(stock, price, available, 0, 0)
        kept = KeptEligibility(regions, stock, available)
        times, found = _time_plans(
            index, vectors, half, catalog, rules, kept, lists, queries, k, config, share
        )
        seconds = {plan: float(np.median(times[plan])) if plan in times else math.inf for plan in PLANS}
        for plan in ("lists", "ann"):  # only a plan that holds the recall target may win
            pairs = zip(found.get(plan, []), found["exact"], strict=False)
            if plan in found and np.mean([len(np.intersect1d(a, e)) / k for a, e in pairs]) < target:
                seconds[plan] = math.inf
        # A plan takes over from the scan only when clearly faster (by MARGIN): timings within
        # noise must not move the crossing.
        fastest = min(PLANS, key=seconds.__getitem__)
        best.append((share, fastest if seconds[fastest] < MARGIN * seconds["exact"] else "exact"))
    # A plan never overtaken keeps every share above (a share of 1.01 is never reached).
    scan_max = _crossing(best, lambda plan: plan != "exact") or 1.01
    lists_max = _crossing([(s, p) for s, p in best if s >= scan_max], lambda plan: plan == "ann") or 1.01
    return {"scan_max_share": round(scan_max, 4), "lists_max_share": round(max(lists_max, scan_max), 4)}


def _time_plans(index, vectors, half, catalog, rules, kept, lists, queries, k, config, share):
    """Seconds per query and rows found, per plan: the plans in turn on each query (after a
    warm-up of each, for the kept sets and first lines), so a noisy moment hits all of them, each
    plan first as often as the others (the first reads lines the next find in cache)."""
    # Timed only where they run: below half the share where the walk gives up, ANN search forced
    # to fill the page deepens toward every item (never the fastest, and too slow to time); a
    # probe that would score a quarter of the kept rows declines and scans them (the scan).
    plans = ["exact"]
    if lists.target(kept.live_count, len(vectors), k) is not None:
        plans.append("lists")
    if share >= config.graph_min_share / 2:
        plans.append("ann")
    times: dict[str, list[float]] = {plan: [] for plan in plans}
    found: dict[str, list[np.ndarray]] = {plan: [] for plan in plans}
    for i, q in enumerate(np.concatenate([queries[:1], queries])):
        for plan in plans[i % len(plans) :] + plans[: i % len(plans)]:  # each plan first in turn
            start = time.perf_counter()
            got = retrieve(
                index,
                vectors,
                catalog,
                rules,
                q[None],
                k,
                config,
                force=plan,
                share=share,
                kept=kept,
                lists=lists,
                half=half,
            )
            if i:
                times[plan].append(time.perf_counter() - start)
                found[plan].append(got.rows)
    return times, found


def _crossing(best: list[tuple[float, str]], switched) -> float | None:
    """The geometric mean of the share at which ``switched(plan)`` first held and the share before
    it (that share alone when it is the first); None when it never held."""
    for i, (share, plan) in enumerate(best):
        if switched(plan):
            return share if i == 0 else math.sqrt(best[i - 1][0] * share)
    return None
