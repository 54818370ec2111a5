"""Peak-load behaviour over real gRPC against `peakrec serve` as a subprocess: refusals are fast and
counted, work that cannot meet its deadline is not started, SIGTERM loses no call taken in, a
restarted worker gets traffic back, and bad input is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import peakrec
import pytest
from fake_engine import write_bundle
from grpc_health.v1 import health_pb2, health_pb2_grpc
from peakrec.pipeline.types import Shopper
from peakrec.service.throttle import Throttled
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc
from service_harness import Server, channel, free_port, storefront

pytestmark = pytest.mark.slow

STOREFRONT = "/peakrec.v1.Recommender/Storefront"


def slow(ms: int, **context: str) -> pb.StorefrontRequest:
    return pb.StorefrontRequest(shopper=pb.Shopper(context={"sleep_ms": str(ms), **context}))


def outcome(call: grpc.Future) -> grpc.StatusCode:
    try:
        call.result()
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("overload") / "bundles"
    write_bundle(root, "v1")
    return root


def test_calls_beyond_the_queue_are_refused_at_once_and_counted(bundles: Path):
    args = ("--max-inflight", "2", "--max-queue", "2")
    with Server(bundles, workers=1, engine="fake_engine", args=args) as server:
        stub = server.stub()
        calls = [stub.Storefront.future(slow(400), timeout=10) for _ in range(4)]
        time.sleep(0.2)  # two run, two wait
        started = time.monotonic()
        extra = [stub.Storefront.future(slow(400), timeout=10) for _ in range(8)]
        codes = [outcome(c) for c in extra]
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 8
        assert time.monotonic() - started < 0.3  # refused at once, not after the 400 ms of work
        assert [outcome(c) for c in calls] == [grpc.StatusCode.OK] * 4
        assert server.metric("peakrec_shed_total", reason="concurrency") == 8
        assert server.metric("peakrec_requests_total", code="RESOURCE_EXHAUSTED") == 8
        assert stub.Storefront(storefront(), timeout=5).item_ids  # and it serves normally afterwards


def test_work_that_cannot_meet_its_deadline_is_not_started(bundles: Path):
    with Server(bundles, workers=1, engine="fake_engine", args=("--max-inflight", "1")) as server:
        stub = server.stub()
        stub.Storefront(slow(300), timeout=5)  # the worker learns that a call takes ~300 ms
        blocker = stub.Storefront.future(slow(300), timeout=5)
        time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            stub.Storefront(slow(300), timeout=0.5)  # ~250 ms left once the blocker is done
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "not started" in info.value.details()
        assert time.monotonic() - started < 0.45  # told before its own deadline passed
        assert outcome(blocker) == grpc.StatusCode.OK
        assert server.metric("peakrec_shed_total", reason="deadline") == 1
        assert server.metric("peakrec_requests_total", code="OK") == 2  # the refused one never ran


def test_sigterm_loses_no_call_taken_in_and_refuses_new_ones(bundles: Path):
    for attempt in range(3):
        args = ("--drain-delay", "0.2", "--max-queue", "64")
        server = Server(bundles, workers=2, engine="fake_engine", args=args).start()
        try:
            stubs = [
                pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.attempt": i}))
                for i in range(8)
            ]
            calls = [stubs[i % 8].Storefront.future(slow(300), timeout=10) for i in range(24)]
            time.sleep(0.05)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            health = health_pb2_grpc.HealthStub(channel(server.target, **{"peakrec.test.attempt": 99}))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                except grpc.RpcError:
                    break  # the worker has already gone: refused as well
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                time.sleep(0.01)
            late = [stubs[i].Storefront.future(storefront(), timeout=5) for i in range(8)]
            assert [outcome(c) for c in calls] == [grpc.StatusCode.OK] * 24, f"attempt {attempt}"
            assert {outcome(c) for c in late} == {grpc.StatusCode.UNAVAILABLE}
            assert server.proc.wait(timeout=20) == 0
        finally:
            server.kill()


def test_a_restarted_worker_gets_its_share_of_long_lived_connections_back(bundles: Path):
    args = ("--max-connection-age", "1")
    with Server(bundles, workers=2, engine="fake_engine", args=args) as server:
        # clients that reconnect at once: while the victim is down, every connection lands on the survivor
        stubs = [
            pb_grpc.RecommenderStub(
                channel(server.target, **{"peakrec.test.attempt": i, "grpc.initial_reconnect_backoff_ms": 20})
            )
            for i in range(16)
        ]
        whoami = pb.StorefrontRequest(
            shopper=pb.Shopper(context={"whoami": "1"}), page=pb.PageRequest(page_size=1, explain=True)
        )

        def pids() -> list[str]:
            answered = []
            for stub in stubs:
                try:
                    reply = stub.Storefront(whoami, timeout=5)
                except grpc.RpcError:
                    continue
                answered.append(re.search(r"pid (\d+)", reply.reasons[0]).group(1))
            return answered

        assert len(set(pids())) == 2
        info = server.admin().IndexInfo(pb.IndexInfoRequest(), timeout=5)
        victim = info.workers[0].pid
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(pids()) < 16 and time.monotonic() < deadline:  # every client reconnected, to the survivor
            pass
        while time.monotonic() < deadline:  # the supervisor restarts the victim
            info = server.admin().IndexInfo(pb.IndexInfoRequest(), timeout=5)
            if info.workers[0].pid not in (0, victim) and info.workers[0].bundle_version == "v1":
                break
            time.sleep(0.05)
        restarted, started = str(info.workers[0].pid), time.monotonic()
        while time.monotonic() - started < 10:
            if pids().count(restarted) >= 4:  # a fair share of the 16 connections is back
                break
            time.sleep(0.1)
        assert pids().count(restarted) >= 4
        assert time.monotonic() - started < 10


@pytest.fixture(scope="module")
def server(bundles: Path):
    with Server(bundles, workers=1, engine="fake_engine") as s:
        yield s


def code_and_details(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.StorefrontRequest(shopper=pb.Shopper(user_id="u" * 4000)), "shopper.user_id"),
        (pb.StorefrontRequest(shopper=pb.Shopper(user_id="u" * 1_000_000)), "shopper.user_id"),
        (pb.StorefrontRequest(shopper=pb.Shopper(region="R" * 16_000)), "shopper.region"),
        (pb.StorefrontRequest(shopper=pb.Shopper(recent_items=["i"] * 1001)), "shopper.recent_items"),
        (pb.StorefrontRequest(shopper=pb.Shopper(exclude_items=["i" * 200])), "shopper.exclude_items[0]"),
        (
            pb.StorefrontRequest(shopper=pb.Shopper(context={str(i): "x" for i in range(65)})),
            "shopper.context",
        ),
        (pb.StorefrontRequest(shopper=pb.Shopper(context={"device": "x" * 5000})), "shopper.context["),
        (pb.StorefrontRequest(shopper=pb.Shopper(vector=[0.5] * 5000)), "shopper.vector"),
        (pb.StorefrontRequest(filters=pb.Filters(brands_allow=["b" * 300])), "filters.brands_allow[0]"),
        (pb.StorefrontRequest(page=pb.PageRequest(now=1e20)), "page.now"),
        (pb.StorefrontRequest(page=pb.PageRequest(now=float("nan"))), "page.now"),
        (pb.StorefrontRequest(page=pb.PageRequest(page=2**31)), "page.page"),
    ],
)
def test_oversized_or_out_of_range_fields_are_invalid_argument_naming_the_field(
    server: Server, request_: pb.StorefrontRequest, field: str
):
    started = time.monotonic()
    code, details = code_and_details(lambda: server.stub().Storefront(request_, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field) and len(details) < 300, details
    assert time.monotonic() - started < 1.0


def test_search_query_and_similar_item_id_are_bounded(server: Server):
    stub = server.stub()
    code, details = code_and_details(lambda: stub.Search(pb.SearchRequest(query="q" * 2000), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("query:")
    code, details = code_and_details(
        lambda: stub.SimilarItems(pb.SimilarItemsRequest(item_id="i" * 500), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("item_id:")


def test_admin_version_and_update_ids_are_bounded(server: Server):
    admin = server.admin()
    code, details = code_and_details(
        lambda: admin.ReloadIndex(pb.ReloadIndexRequest(version="v" * 300), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("version:")
    code, details = code_and_details(
        lambda: admin.ReloadIndex(pb.ReloadIndexRequest(wait_seconds=float("inf")), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("wait_seconds:")
    update = pb.UpdateItemsRequest(updates=[pb.ItemUpdate(item_id="i" * 300, stock=0)])
    code, details = code_and_details(lambda: admin.UpdateItems(update, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("updates[0].item_id")


@pytest.mark.parametrize(
    "payload",
    [
        b"\x0a\x03\x0a\x01\xff",  # shopper.user_id holding invalid UTF-8
        b"\xff\xff\xff\xff",  # not a protobuf message at all
        b"\x0a\x10\x0a",  # a length running past the end
    ],
)
def test_undecodable_payloads_are_invalid_argument_without_a_traceback(server: Server, payload: bytes):
    call = channel(server.target).unary_unary(STOREFRONT)
    for _ in range(50):
        code, details = code_and_details(lambda: call(payload, timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("request: not a valid peakrec.v1.StorefrontRequest")
    assert "Traceback" not in server.log.read_text()


def test_an_engine_bug_logs_one_traceback_not_one_per_request(bundles: Path, tmp_path: Path):
    with Server(bundles, workers=1, engine="fake_engine") as server:
        boom = pb.StorefrontRequest(shopper=pb.Shopper(context={"boom": "1"}))
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(
                    lambda _: code_and_details(lambda: server.stub().Storefront(boom, timeout=5)), range(40)
                )
            )
        assert {c for c, _ in codes} == {grpc.StatusCode.INTERNAL}
        assert server.log.read_text().count("Traceback") == 1


def test_the_client_holds_back_calls_while_the_server_refuses(bundles: Path):
    args = ("--max-inflight", "1", "--max-queue", "0")
    with Server(bundles, workers=1, engine="fake_engine", args=args) as server:
        blocker = server.stub().Storefront.future(slow(3000), timeout=10)  # holds the only slot
        time.sleep(0.2)
        local = 0
        with peakrec.Client(server.target, timeout=2) as client:
            for _ in range(200):
                with pytest.raises(grpc.RpcError) as info:
                    client.storefront(Shopper())
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                local += isinstance(info.value, Throttled)
        assert local > 100  # most of the excess never left the client
        assert server.metric("peakrec_shed_total", reason="concurrency") == 200 - local
        assert outcome(blocker) == grpc.StatusCode.OK


def test_the_health_port_answers_while_the_public_port_refuses_everything(bundles: Path):
    health_port = free_port()
    args = ("--max-inflight", "1", "--max-queue", "0", "--health-port", str(health_port))
    with Server(bundles, workers=1, engine="fake_engine", args=args) as server:
        blocker = server.stub().Storefront.future(slow(2000), timeout=10)  # holds the only slot
        time.sleep(0.2)
        public = health_pb2_grpc.HealthStub(channel(server.target))
        with pytest.raises(grpc.RpcError) as info:
            public.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # why probes need their own port
        probes = health_pb2_grpc.HealthStub(channel(f"127.0.0.1:{health_port}"))
        for service in ("", "peakrec.v1.Recommender"):
            reply = probes.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert outcome(blocker) == grpc.StatusCode.OK


def test_a_drain_under_steady_traffic_ends_once_the_calls_taken_in_are_answered(bundles: Path):
    args = ("--drain-delay", "0", "--grace", "8")
    server = Server(bundles, workers=1, engine="fake_engine", args=args).start()
    try:
        stop = threading.Event()
        codes: list[grpc.StatusCode] = []

        def hammer(i: int) -> None:  # clients that keep calling through the drain
            stub = pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.attempt": i}))
            while not stop.is_set():
                try:
                    stub.Storefront(storefront(), timeout=2)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as err:
                    codes.append(err.code())

        taken_in = server.stub().Storefront.future(slow(500), timeout=10)
        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
        drained = time.monotonic() - started
        stop.set()
        for t in threads:
            t.join()
        assert outcome(taken_in) == grpc.StatusCode.OK
        assert drained < 3, drained  # the 0.5 s call, not the 8 s grace, bounds the drain
        assert grpc.StatusCode.UNAVAILABLE in codes  # what arrived during the drain was told to go
        # (and what reached the transport in the instant the server closed, grpc itself cancels)
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
        assert codes.count(grpc.StatusCode.CANCELLED) <= 4
    finally:
        server.kill()


def test_one_slow_call_does_not_lock_out_calls_with_shorter_deadlines(bundles: Path):
    with Server(bundles, workers=1, engine="fake_engine", args=("--max-inflight", "1")) as server:
        stub = server.stub()
        stub.Storefront(slow(400), timeout=5)  # a cold start: the estimate is now ~400 ms
        codes = []
        for _ in range(40):  # fast calls with 100 ms to spare: a few refused, then served again
            try:
                stub.Storefront(storefront(), timeout=0.1)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
        assert codes[0] == grpc.StatusCode.DEADLINE_EXCEEDED  # not started: the estimate says 400 ms
        assert codes[-10:] == [grpc.StatusCode.OK] * 10, codes
