"""By hand: bundle load time and the memory (PSS) of N processes that map the same bundle.

    python bench/measure_bundle_memory.py BUNDLES_DIR [--procs 4]

Each process loads the bundle (checksums verified, then again without), touches every column and
runs 200 searches so the mapped pages are resident, and reports its /proc/self/smaps_rollup. Shared
pages are split between the processes in PSS, so the sum is the real cost of N workers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import fields

import numpy as np


def _rollup() -> dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def _worker(path: str, ready: mp.Barrier, done: mp.Barrier, queue: mp.Queue) -> None:
    import faiss
    import peakrec

    faiss.omp_set_num_threads(1)
    if path is None:  # baseline: the same imports, no bundle
        queue.put((0.0, 0.0, _rollup()))
        return
    t = time.perf_counter()
    peakrec.load_bundle(path)
    verified = time.perf_counter() - t
    t = time.perf_counter()
    b = peakrec.load_bundle(path, verify=False)
    unverified = time.perf_counter() - t
    for group in (b.items, b.users):
        for f in fields(group):
            a = getattr(group, f.name)
            if a.dtype.kind in "fiu":
                np.asarray(a).sum()
            else:
                len(a.tobytes())  # touch string columns
    xq = np.ascontiguousarray(b.users.vectors[:200])
    b.index.search(xq, 100)
    ready.wait()  # every process has mapped and touched the bundle: now measure
    queue.put((verified, unverified, _rollup()))
    done.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundles")
    parser.add_argument("--procs", type=int, default=4)
    args = parser.parse_args()
    from pathlib import Path

    from peakrec.bundle.manifest import resolve

    bundle = resolve(args.bundles)
    size = sum(p.stat().st_size for p in Path(bundle).rglob("*") if p.is_file())
    ctx = mp.get_context("spawn")
    baseline_queue = ctx.Queue()
    base = ctx.Process(target=_worker, args=(None, None, None, baseline_queue))
    base.start()
    baseline = baseline_queue.get()[2]
    base.join()
    ready, done, queue = ctx.Barrier(args.procs), ctx.Barrier(args.procs + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(bundle), ready, done, queue)) for _ in range(args.procs)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    done.wait()
    for p in procs:
        p.join()
    print(f"bundle {bundle.name}: {size / 2**20:.0f} MiB on disk, {args.procs} processes")
    for verified, unverified, r in results:
        print(
            f"  load {verified:.2f}s verified / {unverified:.2f}s unverified  "
            f"Rss {r['Rss'] / 1024:.0f} MiB  Pss {r['Pss'] / 1024:.0f} MiB  "
            f"Anonymous {r['Anonymous'] / 1024:.0f} MiB"
        )
    total = sum(r["Pss"] for _, _, r in results)
    print(f"  total PSS {total / 1024:.0f} MiB = {total * 1024 / size:.2f} x bundle size")
    extra = total - args.procs * baseline["Pss"]
    print(
        f"  baseline process (imports, no bundle) Pss {baseline['Pss'] / 1024:.0f} MiB; total minus "
        f"{args.procs} baselines {extra / 1024:.0f} MiB = {extra * 1024 / size:.2f} x bundle size"
    )


if __name__ == "__main__":
    main()
