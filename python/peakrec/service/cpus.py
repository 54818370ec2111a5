"""How many CPUs this process may really use: its CPU affinity, capped by the cgroup CPU quota.

``os.cpu_count()`` reports the host's cores: in a container limited to 2 CPUs on a 64-core node it
says 64, and 64 workers would thrash on 2 CPUs' worth of time (and map 64 bundles' page tables).
Kubernetes' ``resources.limits.cpu`` becomes the cgroup quota read here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on (taskset, cpusets)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _own_cgroup(proc_cgroup: Path) -> str:
    """The process's cgroup v2 path ("0::/kubepods/..."), or "" when not on the unified hierarchy."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].strip()
    except OSError:
        pass
    return ""


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota in CPUs (``1.5`` for ``150000 100000``), or None when unlimited or unknown.

    cgroup v2: the smallest ``cpu.max`` from the process's own cgroup up to the root (a limit on any
    ancestor applies). cgroup v1: ``cpu/cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (-1 = none).
    """
    quotas = []
    own = _own_cgroup(proc_cgroup).strip("/")
    parts = own.split("/") if own else []
    for depth in range(len(parts), -1, -1):  # own cgroup first, then each ancestor, then the root
        path = root.joinpath(*parts[:depth], "cpu.max")
        try:
            limit, period = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if limit != "max" and float(period) > 0:
            quotas.append(float(limit) / float(period))
    for v1 in ("cpu", "cpu,cpuacct"):
        try:
            limit = float((root / v1 / "cpu.cfs_quota_us").read_text())
            period = float((root / v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        if limit > 0 and period > 0:
            quotas.append(limit / period)
    return min(quotas) if quotas else None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Affinity capped by the cgroup quota rounded down, at least 1: a 1.5-CPU quota runs 1 worker,
    since 2 busy workers would be throttled for a third of every period (latency spikes), as Go's
    automaxprocs also rounds."""
    cpus = affinity_cpus()
    quota = cgroup_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return cpus
