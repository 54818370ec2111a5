"""Live behaviour of `peakrec serve`: updates across workers, journal replay after kill -9, hot swap
under load, SIGTERM drain, shedding, worker restart. Stand-in engine, so timing is controlled."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from fake_engine import write_bundle
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc
from service_harness import Server, channel, storefront

pytestmark = pytest.mark.slow


def test_update_is_visible_in_every_worker_once_acknowledged(tmp_path: Path):
    write_bundle(tmp_path / "bundles", "v1")
    with Server(tmp_path / "bundles", workers=2, engine="fake_engine") as server:
        admin = server.admin()
        pids = set()
        stubs = []
        for attempt in range(40):
            ch = channel(server.target, **{"peakrec.test.attempt": attempt})
            stubs.append(pb_grpc.RecommenderStub(ch))
            adm = pb_grpc.AdminStub(channel(server.admin_target, **{"peakrec.test.attempt": attempt}))
            pids.add(adm.IndexInfo(pb.IndexInfoRequest(), timeout=5).answered_by.pid)
        assert len(pids) == 2, "admin connections should spread over both workers"
        for stub in stubs:
            assert stub.Storefront(storefront(page_size=1), timeout=5).item_ids == ["I0"]
        admin.UpdateItems(pb.UpdateItemsRequest(updates=[pb.ItemUpdate(item_id="I0", stock=0)]), timeout=5)
        for stub in stubs:  # 40 connections over 2 workers: every worker is among them
            assert "I0" not in stub.Storefront(storefront(page_size=5), timeout=5).item_ids


def test_journal_is_replayed_after_kill_9(tmp_path: Path):
    bundles = tmp_path / "bundles"
    write_bundle(bundles, "v1")
    server = Server(bundles, workers=1, engine="fake_engine").start()
    try:
        update = pb.ItemUpdate(item_id="I0", available=False)
        server.admin().UpdateItems(pb.UpdateItemsRequest(updates=[update]), timeout=5)
    finally:
        server.kill()  # SIGKILL supervisor and worker: no clean shutdown
    with Server(bundles, workers=1, engine="fake_engine") as again:
        assert "I0" not in again.stub().Storefront(storefront(), timeout=5).item_ids


def test_hot_swap_under_load_fails_no_request_and_keeps_updates(tmp_path: Path):
    bundles = tmp_path / "bundles"
    write_bundle(bundles, "v1")
    write_bundle(bundles, "v2", current=False)
    with Server(bundles, workers=2, engine="fake_engine") as server:
        server.admin().UpdateItems(
            pb.UpdateItemsRequest(updates=[pb.ItemUpdate(item_id="I0", available=False)]), timeout=5
        )
        stop = threading.Event()
        seen: list[tuple[str, bool]] = []
        errors: list[str] = []

        def load(i: int) -> None:
            stub = pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.attempt": i}))
            for _ in range(2000):  # bounded
                if stop.is_set():
                    return
                try:
                    reply = stub.Storefront(storefront(page_size=5), timeout=5)
                    seen.append((reply.bundle_version, "I0" in reply.item_ids))
                except grpc.RpcError as err:
                    errors.append(f"{err.code()}: {err.details()}")

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(load, i) for i in range(6)]
            time.sleep(0.5)
            reply = server.admin().ReloadIndex(
                pb.ReloadIndexRequest(version="v2", wait_seconds=30), timeout=40
            )
            assert reply.bundle_version == "v2" and {w.bundle_version for w in reply.workers} == {"v2"}
            time.sleep(0.5)
            stop.set()
            for f in futures:
                f.result()
        assert not errors
        versions = [v for v, _ in seen]
        assert "v1" in versions and versions[-1] == "v2"
        assert not any(hidden for _, hidden in seen), "the journaled update must hold on the new bundle"
        assert (bundles / "CURRENT").read_text().strip() == "v2"


def test_new_current_file_is_picked_up_and_a_corrupt_one_refused(tmp_path: Path):
    bundles = tmp_path / "bundles"
    write_bundle(bundles, "v1")
    write_bundle(bundles, "v2", current=False)
    write_bundle(bundles, "bad", current=False)
    (bundles / "bad" / "fake.json").write_text("garbage")
    with Server(bundles, workers=2, engine="fake_engine") as server:
        stub = server.stub()
        (bundles / "CURRENT").write_text("bad\n")
        time.sleep(1.0)
        assert stub.Storefront(storefront(), timeout=5).bundle_version == "v1"
        (bundles / "CURRENT").write_text("v2\n")
        for _ in range(100):
            info = server.admin().IndexInfo(pb.IndexInfoRequest(), timeout=5)
            if {w.bundle_version for w in info.workers} == {"v2"}:
                break
            time.sleep(0.1)
        assert {w.bundle_version for w in info.workers} == {"v2"}


def test_sigterm_drains_in_flight_requests_and_exits_0(tmp_path: Path):
    write_bundle(tmp_path / "bundles", "v1")
    server = Server(tmp_path / "bundles", workers=2, engine="fake_engine").start()
    try:
        slow = pb.StorefrontRequest(shopper=pb.Shopper(context={"sleep_ms": "1500"}))
        stubs = [
            pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.attempt": i})) for i in range(4)
        ]
        calls = [stub.Storefront.future(slow, timeout=10) for stub in stubs]
        time.sleep(0.5)  # all four are in flight
        started = time.monotonic()
        assert server.stop(timeout=20) == 0
        assert time.monotonic() - started < 10  # drained within the 5 s grace, not killed after it
        for call in calls:
            assert len(call.result().item_ids) == 20 and not call.result().degraded
        assert server.lines[-1].startswith("peakrec serve: stopped (exit 0)")
    finally:
        server.kill()


def test_a_dead_worker_is_restarted(tmp_path: Path):
    write_bundle(tmp_path / "bundles", "v1")
    with Server(tmp_path / "bundles", workers=2, engine="fake_engine") as server:
        info = server.admin().IndexInfo(pb.IndexInfoRequest(), timeout=5)
        victim = info.workers[0].pid
        os.kill(victim, signal.SIGKILL)
        for attempt in range(100):  # connections to the dead worker are gone: connect afresh
            admin = pb_grpc.AdminStub(channel(server.admin_target, **{"peakrec.test.attempt": attempt}))
            try:
                info = admin.IndexInfo(pb.IndexInfoRequest(), timeout=5)
            except grpc.RpcError:
                time.sleep(0.1)
                continue
            if info.workers[0].pid not in (0, victim) and info.workers[0].bundle_version == "v1":
                break
            time.sleep(0.1)
        assert info.workers[0].pid not in (0, victim)
        for attempt in range(8):
            stub = pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.attempt": 100 + attempt}))
            assert stub.Storefront(storefront(), timeout=5).item_ids


def test_reload_that_not_every_worker_finishes_in_time_is_unavailable(tmp_path: Path):
    bundles = tmp_path / "bundles"
    for version in ("v1", "v2", "v3", "v4"):
        write_bundle(bundles, version, current=version == "v1")
    with Server(bundles, workers=2, engine="fake_engine") as server:
        codes = []
        for version in ("v2", "v3", "v4"):  # the other worker notices CURRENT within 250 ms, not 1 ms
            request = pb.ReloadIndexRequest(version=version, wait_seconds=0.001)
            try:
                server.admin().ReloadIndex(request, timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
                assert "not every worker serves" in err.details()
                break
        assert codes[-1] == grpc.StatusCode.UNAVAILABLE
