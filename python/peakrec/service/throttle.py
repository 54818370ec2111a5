"""Client-side adaptive throttling, as in Google's SRE book ("Handling Overload").

A refusal is cheap but not free: a server refusing nine calls for every one it serves spends about
as much CPU refusing as serving (see docs/serving.md). So once a server refuses, its clients refuse
part of their own calls locally, before they reach the wire. Over the last ``window`` seconds each
client counts the calls it made (``requests``) and those the server accepted (``accepts``: any
answer but RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED, which is how an overloaded server refuses work
it cannot finish in time), and refuses a new call with probability

    max(0, (requests - k * accepts) / (requests + 1))

With ``k = 2`` a client keeps sending up to twice what the server accepts, so the server still sees
the excess (and recovers at once when load falls) while most of the excess never leaves the client.
"""

from __future__ import annotations

import random
import threading
import time

import grpc

SHED = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED)  # not accepts


class Throttled(grpc.RpcError):
    """A call the client refused itself: reads as RESOURCE_EXHAUSTED, like the server's refusals."""

    def __init__(self, probability: float):
        super().__init__(f"throttled by the client: the server refuses calls ({probability:.0%} held back)")
        self._details = str(self)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return self._details


class AdaptiveThrottle:
    """Counts over ``window`` seconds in one-second buckets; thread-safe."""

    def __init__(self, k: float = 2.0, window: int = 10, seed: int | None = None):
        if not k >= 1:
            raise ValueError(f"throttle k: {k} must be at least 1")
        self.k = k
        self._requests = [0] * window
        self._accepts = [0] * window
        self._second = [0] * window
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def _slot(self, now: int) -> int:
        i = now % len(self._second)
        if self._second[i] != now:  # a bucket from an earlier window: start it afresh
            self._second[i], self._requests[i], self._accepts[i] = now, 0, 0
        return i

    def admit(self) -> None:
        """Counts a call about to be made, or raises ``Throttled``."""
        now = int(time.monotonic())
        with self._lock:
            i = self._slot(now)
            oldest = now - len(self._second)
            requests = sum(r for r, s in zip(self._requests, self._second) if s > oldest)
            accepts = sum(a for a, s in zip(self._accepts, self._second) if s > oldest)
            self._requests[i] += 1
            p = (requests - self.k * accepts) / (requests + 1)
            if p > 0 and self._random.random() < p:
                raise Throttled(p)

    def accepted(self) -> None:
        """The server accepted the call (answered anything but a code in ``SHED``)."""
        with self._lock:
            self._accepts[self._slot(int(time.monotonic()))] += 1
