"""An open-loop gRPC load generator: sends requests at a fixed rate whatever the server answers, as
shoppers at a festival peak do, and counts what comes back (status codes, latency of the answers).

A closed loop (N requests in flight) slows down with the server and so never overloads it; offered
load has to be open-loop to show goodput under overload. Requests are sent as pre-serialised bytes
and replies are not parsed, so the generator costs as little CPU as grpc.aio allows; several
processes share the rate when one is not enough.

    python bench/loadgen.py --target 127.0.0.1:50051 --rate 3000 --seconds 10 --deadline-ms 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import numpy as np
from peakrec.service.throttle import AdaptiveThrottle, Throttled


@dataclass
class Outcome:
    """What one run saw: counts per status code name, and the latency (ms) of each OK answer."""

    offered: int = 0
    seconds: float = 0.0
    codes: Counter = field(default_factory=Counter)
    ok_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)  # RESOURCE_EXHAUSTED / UNAVAILABLE answers

    def merge(self, other: Outcome) -> None:
        self.offered += other.offered
        self.seconds = max(self.seconds, other.seconds)
        self.codes.update(other.codes)
        self.ok_ms += other.ok_ms
        self.refused_ms += other.refused_ms

    def summary(self) -> dict[str, float]:
        ok = np.array(self.ok_ms) if self.ok_ms else np.zeros(1)
        refused = np.array(self.refused_ms) if self.refused_ms else np.zeros(1)
        s = max(self.seconds, 1e-9)
        return {
            "offered_qps": self.offered / s,
            "goodput_qps": self.codes["OK"] / s,
            "ok_p50_ms": float(np.percentile(ok, 50)),
            "ok_p99_ms": float(np.percentile(ok, 99)),
            "refused_qps": (self.codes["RESOURCE_EXHAUSTED"] + self.codes["UNAVAILABLE"]) / s,
            "throttled_qps": self.codes["THROTTLED"] / s,
            "refused_p99_ms": float(np.percentile(refused, 99)),
            "deadline_exceeded_qps": self.codes["DEADLINE_EXCEEDED"] / s,
            "other_errors": sum(
                n
                for c, n in self.codes.items()
                if c not in ("OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "THROTTLED")
            ),
        }


async def _run(
    target: str,
    method: str,
    payloads: list[bytes],
    rate: float,
    seconds: float,
    deadline_s: float,
    connections: int,
    seed: int,
    throttle_k: float | None = None,
) -> Outcome:
    channels = [
        grpc.aio.insecure_channel(
            target, options=[("grpc.use_local_subchannel_pool", 1), ("lg", seed * 1000 + i)]
        )
        for i in range(connections)
    ]
    calls = [ch.unary_unary(method) for ch in channels]  # bytes in, bytes out
    out = Outcome()
    pending: set[asyncio.Task] = set()
    throttle = AdaptiveThrottle(throttle_k, seed=seed) if throttle_k else None

    async def one(i: int) -> None:
        started = time.perf_counter()
        if throttle is not None:
            try:
                throttle.admit()
            except Throttled:
                out.codes["THROTTLED"] += 1  # refused by the client itself, never sent
                return
        try:
            await calls[i % connections](payloads[i % len(payloads)], timeout=deadline_s)
            out.codes["OK"] += 1
            out.ok_ms.append((time.perf_counter() - started) * 1e3)
            if throttle is not None:
                throttle.accepted()
        except grpc.aio.AioRpcError as err:
            code = err.code().name
            out.codes[code] += 1
            if code in ("RESOURCE_EXHAUSTED", "UNAVAILABLE"):
                out.refused_ms.append((time.perf_counter() - started) * 1e3)
            if throttle is not None and code not in ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"):
                throttle.accepted()

    for ch in channels:
        await ch.channel_ready()
    loop = asyncio.get_running_loop()
    start = loop.time()
    interval = 1.0 / rate
    n = int(rate * seconds)
    i = 0
    while i < n:
        now = loop.time()
        due = int((now - start) / interval) + 1  # every request whose send time has come
        while i < min(due, n):
            task = asyncio.ensure_future(one(i + seed))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
    out.offered = n
    out.seconds = seconds
    if pending:
        await asyncio.wait(pending)
    for ch in channels:
        await ch.close()
    return out


async def _closed(target: str, method: str, payloads: list[bytes], in_flight: int, seconds: float) -> Outcome:
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1), ("lg", i)])
        for i in range(in_flight)
    ]
    out = Outcome()
    stop = time.perf_counter() + seconds

    async def loop(i: int) -> None:
        call = channels[i].unary_unary(method)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                await call(payloads[(out.offered + i) % len(payloads)], timeout=5)
                out.codes["OK"] += 1
                out.ok_ms.append((time.perf_counter() - started) * 1e3)
            except grpc.aio.AioRpcError as err:
                out.codes[err.code().name] += 1
            out.offered += 1

    for ch in channels:
        await ch.channel_ready()
    await asyncio.gather(*(loop(i) for i in range(in_flight)))
    out.seconds = seconds
    for ch in channels:
        await ch.close()
    return out


def capacity(target: str, method: str, payloads: list[bytes], in_flight: int, seconds: float) -> Outcome:
    """A closed loop: ``in_flight`` calls outstanding, each on its own connection, for ``seconds``.
    With fewer calls in flight than the server admits, nothing is refused: its OK/s is its capacity."""
    return asyncio.run(_closed(target, method, payloads, in_flight, seconds))


def _worker(args: tuple) -> Outcome:
    return asyncio.run(_run(*args))


def offer(
    target: str,
    method: str,
    payloads: list[bytes],
    rate: float,
    seconds: float,
    deadline_s: float = 0.1,
    connections: int = 8,
    processes: int = 1,
    throttle_k: float | None = None,
) -> Outcome:
    """Offers ``rate`` requests/s of ``method`` for ``seconds`` from ``processes`` processes, each
    with ``connections`` connections; every call has the deadline ``deadline_s``. ``throttle_k``:
    clients throttle themselves as peakrec.Client does (None: naive clients)."""
    jobs = [
        (target, method, payloads, rate / processes, seconds, deadline_s, connections, p, throttle_k)
        for p in range(processes)
    ]
    if processes == 1:
        outcomes = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            outcomes = pool.map(_worker, jobs)
    total = Outcome()
    for o in outcomes:
        total.merge(o)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", default="/peakrec.v1.Recommender/Storefront")
    parser.add_argument("--payload", help="file of one serialised request (default: an empty message)")
    parser.add_argument("--rate", type=float, required=True, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--deadline-ms", type=float, default=100.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--throttle-k", type=float, help="throttle like peakrec.Client (default: naive)")
    args = parser.parse_args()
    payload = open(args.payload, "rb").read() if args.payload else b""
    out = offer(
        args.target,
        args.method,
        [payload],
        args.rate,
        args.seconds,
        args.deadline_ms / 1e3,
        args.connections,
        args.processes,
        args.throttle_k,
    )
    print(json.dumps({**out.summary(), "codes": dict(out.codes), "pid": os.getpid()}, indent=1))


if __name__ == "__main__":
    main()
