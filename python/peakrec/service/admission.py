"""Admission for one worker: a bounded, deadline-aware queue in front of the request threads.

grpcio's synchronous server hands every call to an executor. The stock ThreadPoolExecutor queues
without bound and in arrival order, so under overload every request waits behind the backlog, is
answered after its deadline, and goodput collapses. This executor instead

* runs at most ``threads`` requests at once (with the GIL, more threads only add latency);
* serves the queue in arrival order while it drains, and newest first once the oldest call has
  waited longer than ``target`` (adaptive LIFO: the newest call has the most deadline left), yet
  looks at any call that has waited ``interval`` (so none is forgotten at the bottom of the stack
  until its deadline has passed: it is served if it still has the time, refused if not);
* tells the interceptor how long each call waited and whether the queue was congested
  (``waited()``), so that work whose deadline has passed or cannot be met is never started and a
  call that spent half its deadline queued is refused instead.

The queue is bounded by grpcio's ``maximum_concurrent_rpcs`` (``limit``, see ``server.py``): beyond it
grpcio refuses calls before any thread sees them, the cheapest refusal there is in-process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

_local = threading.local()
DRAIN_LIMIT = 1 << 30  # grpcio's limit while draining: every call reaches the interceptor


def waited() -> tuple[float, bool]:
    """(seconds the running call waited in the queue, whether the queue was congested)."""
    return getattr(_local, "waited", 0.0), getattr(_local, "congested", False)


def arrived() -> float | None:
    """time.monotonic() when the running call was handed to this executor (None: another one)."""
    return getattr(_local, "queued", None)


class _Item:
    __slots__ = ("queued", "before_drain", "future", "fn", "args", "kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, before_drain: bool):
        self.queued = time.monotonic()
        self.before_drain = before_drain
        self.future: futures.Future = futures.Future()
        self.fn, self.args, self.kwargs = fn, args, kwargs


class AdmissionExecutor(futures.Executor):
    """``threads`` request threads behind an adaptive-LIFO queue. ``limit`` bounds the calls taken
    in (running plus queued; grpcio's ``maximum_concurrent_rpcs`` enforces it, ``on_limit`` is told
    when it changes): it follows the measured service interval (``served``) so that a full queue
    holds about ``queue_seconds`` of work, with room for at least ``threads`` queued and at most
    ``max_queue``."""

    def __init__(
        self,
        threads: int,
        max_queue: int,
        queue_seconds: float = 0.02,
        target: float = 0.005,
        interval: float = 0.025,
        name: str = "peakrec-rpc",
    ):
        if threads < 1 or max_queue < 0:
            raise ValueError(f"admission: need threads ({threads}) >= 1 and max_queue ({max_queue}) >= 0")
        self.threads, self.max_queue, self.queue_seconds = threads, max_queue, queue_seconds
        self.limit = threads + max_queue  # until a service interval has been measured
        self.on_limit: Callable[[int], None] | None = None
        self.target, self.interval = target, interval
        self._gap = 0.0  # seconds between answers while calls wait, moving average
        self._last_served: float | None = None  # the last answer while calls were waiting
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Item] = deque()
        self._pending = 0  # queued + running: what grpcio counts against maximum_concurrent_rpcs
        self._taken_in = 0  # of those, the calls that arrived before a drain began
        self._closed = False
        self._draining = False
        self._workers = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def served(self) -> None:
        """A call ran the request path to its answer. While calls wait, the time between such answers
        is the worker's real service interval (whatever the thread count and the GIL make of it), and
        the queue bound is ``queue_seconds`` of them."""
        now = time.monotonic()
        if self._draining or not self._queue:  # idle: gaps measure arrivals, not service
            self._last_served = None
            return
        last, self._last_served = self._last_served, now
        if last is None or now <= last:
            return
        gap = now - last
        self._gap += (gap - self._gap) * (0.05 if self._gap else 1.0)
        queue = round(self.queue_seconds / self._gap)
        limit = self.threads + min(self.max_queue, max(self.threads, queue))  # room for a burst
        if limit != self.limit:
            self.limit = limit
            if self.on_limit is not None:  # it keeps the drain's open limit if a drain began meanwhile
                self.on_limit(limit)

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """From now on every call reaches the interceptor, which answers those that arrive during
        the drain UNAVAILABLE (a retry elsewhere), rather than grpcio's RESOURCE_EXHAUSTED."""
        self._draining = True
        self.limit = DRAIN_LIMIT
        if self.on_limit is not None:
            self.on_limit(DRAIN_LIMIT)

    @property
    def pending(self) -> int:
        """Calls handed over and not yet answered (queued or running)."""
        return self._pending

    @property
    def taken_in(self) -> int:
        """Calls handed over before a drain began and not yet answered: the ones a drain waits for."""
        return self._taken_in

    # -- futures.Executor ------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future:
        with self._cond:
            if self._closed:
                raise RuntimeError("admission: executor is shut down")
            item = _Item(fn, args, kwargs, before_drain=not self._draining)
            self._queue.append(item)
            self._pending += 1
            self._taken_in += item.before_drain
            self._cond.notify()
        return item.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()

    # -- the queue discipline --------------------------------------------------------------------
    def _take(self) -> tuple[_Item, float, bool]:
        """Under the lock, queue not empty: (item, seconds it waited, queue congested)."""
        now = time.monotonic()
        wait = now - self._queue[0].queued
        if wait < self.target:
            return self._queue.popleft(), wait, False
        if wait >= self.interval:  # the oldest is looked at (served if it still has the time), not forgotten
            return self._queue.popleft(), wait, True
        newest = self._queue.pop()
        return newest, now - newest.queued, True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closed:
                        return
                    self._cond.wait()
                item, wait, congested = self._take()
            if not item.future.set_running_or_notify_cancel():
                self._done(item)
                continue
            _local.waited, _local.congested, _local.queued = wait, congested, item.queued
            try:
                result = item.fn(*item.args, **item.kwargs)
            except BaseException as err:  # grpcio's pool function never raises; keep the thread alive
                self._done(item)
                item.future.set_exception(err)
            else:
                self._done(item)
                item.future.set_result(result)
            finally:
                _local.waited, _local.congested, _local.queued = 0.0, False, None

    def _done(self, item: _Item) -> None:
        with self._cond:
            self._pending -= 1
            self._taken_in -= item.before_drain
