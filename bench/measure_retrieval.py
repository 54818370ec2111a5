"""By hand: recall@100 and latency of each retrieval strategy across selectivities (1M items).

    .venv/bin/python bench/measure_retrieval.py [n_items]

Selectivity is set through the live ``available`` column (random rows), so every strategy sees the
same eligible set; ground truth is brute force over exactly those rows. Results feed docs/retrieval.md.
"""

import sys
import time
from pathlib import Path

import faiss
import numpy as np
from peakrec import Recommender, _core
from peakrec.config import RetrievalConfig
from peakrec.retrieval.search import exact_search, retrieve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from peakrec.state import ItemState
from synthetic import NOW, open_catalog, synthetic_bundle  # noqa: E402

faiss.omp_set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
cache = Path.home() / ".cache" / "peakrec-bench" / f"hnsw32-{n}-64.faiss"
t = time.time()
bundle = synthetic_bundle(
    n_items=n, n_users=200, dim=64, n_regions=1, index_factory="HNSW32,Flat", seed=3, index_cache=cache
)
print(f"bundle ready in {time.time() - t:.0f}s", flush=True)
rec = Recommender(bundle)
state = ItemState.from_arrays(np.ones(n, np.int32) * 5, np.ones(n, np.float32))
items = bundle.items
# Everyone sells everywhere, everything launched: selectivity comes from `available` alone.
cat = open_catalog(n, items.brand, items.category)
ef = int(sys.argv[2]) if len(sys.argv) > 2 else 128
config = RetrievalConfig(ef_search=ef)
queries = bundle.users.vectors[np.flatnonzero(bundle.users.has_vector)[:20]]  # no zero vectors
rng = np.random.default_rng(0)
print("selectivity strategy recall@100 median_ms")
for sel in [1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0]:
    state.available[:] = (rng.random(n) < sel).astype(np.uint8)
    rules = _core.Rules(state.stock, state.price, state.available, 0, NOW)
    eligible = np.flatnonzero(state.available)
    truth = [set(exact_search(bundle.items.vectors, eligible, q[None], 100)[0].tolist()) for q in queries]
    for strategy in ["ann", "bitmap", "exact", None]:
        if strategy == "exact" and len(eligible) > 300_000:
            continue
        if strategy == "ann" and sel < 0.1:  # measured before: 241 ms at 1%, 88 ms at 3%
            continue
        if strategy == "exact" and len(eligible) > 300_000:
            continue
        times, recalls = [], []
        for q, tr in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            got = retrieve(
                bundle.index, bundle.items.vectors, cat, rules, q[None].copy(), 100, config, force=strategy
            )
            times.append(time.perf_counter() - t0)
            recalls.append(len(tr & set(got.rows[:100].tolist())) / max(1, min(100, len(tr))))
        name = strategy or f"auto:{got.strategy}"
        print(f"{sel:>9.4%} {name:>12} {np.mean(recalls):.3f} {np.median(times) * 1e3:8.2f}", flush=True)
