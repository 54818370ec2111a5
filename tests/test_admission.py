"""The admission executor's queue discipline and its bound, driven directly."""

from __future__ import annotations

import threading
import time

import pytest
from peakrec.service import admission
from peakrec.service.admission import AdmissionExecutor, waited


def run_order(executor: AdmissionExecutor, names: list[str], hold: float) -> list[tuple[str, bool]]:
    """Blocks the only thread for ``hold`` seconds, queues ``names``, returns the order they ran in
    and whether each saw a congested queue."""
    release = threading.Event()
    executor.submit(release.wait)
    time.sleep(0.01)
    order: list[tuple[str, bool]] = []
    futures = [executor.submit(lambda n=n: order.append((n, waited()[1]))) for n in names]
    time.sleep(hold)
    release.set()
    for f in futures:
        f.result(timeout=5)
    return order


def test_a_queue_that_drains_quickly_is_served_in_arrival_order():
    executor = AdmissionExecutor(threads=1, max_queue=8, target=1.0)
    assert run_order(executor, ["a", "b", "c"], hold=0.0) == [("a", False), ("b", False), ("c", False)]
    executor.shutdown()


def test_a_congested_queue_serves_the_newest_first():
    executor = AdmissionExecutor(threads=1, max_queue=8, target=0.005, interval=10.0)
    order = run_order(executor, ["a", "b", "c", "d"], hold=0.05)
    assert [n for n, _ in order] == ["d", "c", "b", "a"] and all(c for _, c in order)
    executor.shutdown()


def test_a_call_that_waited_an_interval_is_looked_at_next():
    executor = AdmissionExecutor(threads=1, max_queue=8, target=0.005, interval=0.03)
    order = run_order(executor, ["a", "b", "c"], hold=0.05)
    assert [n for n, _ in order] == ["a", "b", "c"]  # all older than the interval: oldest first
    executor.shutdown()


def test_the_bound_follows_the_measured_service_interval(monkeypatch: pytest.MonkeyPatch):
    clock = [100.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: clock[0])
    seen: list[int] = []
    executor = AdmissionExecutor(threads=2, max_queue=64, queue_seconds=0.02)
    executor.on_limit = seen.append
    release = threading.Event()
    queued = [executor.submit(release.wait) for _ in range(4)]  # two run, two wait

    def answers(n: int, every: float) -> None:
        for _ in range(n):
            clock[0] += every
            executor.served()

    assert executor.limit == 66  # nothing measured yet: the configured bound
    answers(3, 0.0005)  # an answer every 0.5 ms while calls wait: 20 ms is 40 calls of queue
    assert executor.limit == 42 and seen == [42]
    answers(300, 0.010)  # slower answers: a shorter queue holds the same 20 ms
    assert executor.limit == 4 and seen[-1] == 4  # never below one queued call per thread
    answers(300, 0.00001)
    assert executor.limit == 66  # never beyond max_queue
    executor.drain()
    assert seen[-1] > 1_000_000  # while draining, grpcio lets every call through to be told UNAVAILABLE
    answers(10, 0.010)
    assert seen[-1] > 1_000_000
    release.set()
    for f in queued:
        f.result(timeout=5)
    executor.shutdown()


def test_answers_without_a_queue_say_nothing_about_the_service_interval():
    executor = AdmissionExecutor(threads=2, max_queue=64)
    for _ in range(10):
        executor.served()  # idle worker: gaps are the arrival rate, not the service rate
        time.sleep(0.002)
    assert executor.limit == 66
    executor.shutdown()


def test_pending_counts_queued_and_running_calls():
    executor = AdmissionExecutor(threads=1, max_queue=8)
    release = threading.Event()
    futures = [executor.submit(release.wait) for _ in range(3)]
    time.sleep(0.01)
    assert executor.pending == 3
    release.set()
    for f in futures:
        f.result(timeout=5)
    assert executor.pending == 0
    executor.shutdown()
