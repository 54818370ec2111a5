"""Client-side adaptive throttling against the SRE book's rule, and through peakrec.Client against a
server that refuses."""

from __future__ import annotations

import time

import grpc
import pytest
from peakrec.service.throttle import AdaptiveThrottle, Throttled


def attempt(throttle: AdaptiveThrottle, server_accepts: bool) -> str:
    try:
        throttle.admit()
    except Throttled:
        return "local"
    if server_accepts:
        throttle.accepted()
        return "accepted"
    return "refused"


def test_nothing_is_held_back_while_the_server_accepts():
    throttle = AdaptiveThrottle(k=2, seed=1)
    assert {attempt(throttle, True) for _ in range(1000)} == {"accepted"}


def test_an_overloaded_server_sees_about_k_times_what_it_can_accept(monkeypatch: pytest.MonkeyPatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    throttle = AdaptiveThrottle(k=2, window=10, seed=1)
    sent_per_second = []
    for _ in range(40):  # 40 s of 1,000 calls/s offered to a server that accepts 100/s
        sent = accepted = 0
        for _ in range(1000):
            outcome = attempt(throttle, server_accepts=accepted < 100)
            sent += outcome != "local"
            accepted += outcome == "accepted"
            clock[0] += 0.001
        sent_per_second.append(sent)
    steady = sent_per_second[20:]
    assert all(150 < s < 260 for s in steady), steady  # the rule's fixed point: k x 100 = 200/s
    with pytest.raises(Throttled) as info:
        for _ in range(100):
            throttle.admit()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "throttled" in info.value.details()


def test_throttling_stops_once_the_window_has_passed(monkeypatch: pytest.MonkeyPatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    throttle = AdaptiveThrottle(k=2, window=5, seed=1)
    for _ in range(1000):
        attempt(throttle, server_accepts=False)
    assert "local" in {attempt(throttle, False) for _ in range(10)}
    clock[0] += 6
    assert {attempt(throttle, True) for _ in range(100)} == {"accepted"}


def test_k_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveThrottle(k=0.5)
