"""End to end as users run it: `peakrec demo-data` → `peakrec build` → `peakrec serve` with the real
engine, then the demo's shoppers, a sell-out, a hot swap under load and a corrupt bundle refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import peakrec
import pytest
from peakrec.pipeline.types import Shopper
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc
from service_harness import Server, channel

pytestmark = pytest.mark.slow


def peakrec_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "peakrec.cli", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def build(data: Path, bundles: Path) -> str:
    peakrec_cli(
        "build", "--items", str(data / "items.jsonl"), "--users", str(data / "users.jsonl"),
        "--item-vectors", str(data / "item_vectors.npy"), "--user-vectors", str(data / "user_vectors.npy"),
        "--config", str(data / "build.toml"), "--quiet", "--out", str(bundles),
    )  # fmt: skip
    return (bundles / "CURRENT").read_text().strip()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "data"
    peakrec_cli("demo-data", "--items", "3000", "--users", "600", "--out", str(data))
    return data


@pytest.fixture(scope="module")
def served(catalogue: Path) -> Iterator[tuple[Server, Path, str]]:
    bundles = catalogue.parent / "bundles"
    first = build(catalogue, bundles)
    with Server(bundles, workers=2) as server:
        yield server, bundles, first


@pytest.fixture
def client(served: tuple[Server, Path, str]) -> Iterator[peakrec.Client]:
    server = served[0]
    with peakrec.Client(server.target, admin_target=server.admin_target, timeout=10) as c:
        yield c


def test_loyal_member_in_zhejiang_sees_her_brand(client: peakrec.Client):
    page = client.storefront(
        Shopper(user_id="u-zj-loyal-01", member_brands=("Nike",)), details=True, explain=True
    )
    assert len(page.items) == 20 and not page.cold and not page.degraded
    assert any(i.brand == "Nike" for i in page.items[:5])


def test_cold_shopper_from_brazil_is_served_from_context(client: peakrec.Client):
    shopper = Shopper(user_id="u-br-cold-01", region="BR", context={"device": "android", "age_band": "18-24"})
    page = client.storefront(shopper)
    assert page.cold and len(page.items) == 20


def test_similar_items_and_an_unknown_item(client: peakrec.Client, catalogue: Path):
    page = client.similar_items("i0000001", Shopper(region="CN-ZJ"), page_size=5)
    assert len(page.items) == 5 and "i0000001" not in page.item_ids
    with pytest.raises(peakrec.errors.NotFoundError, match="item_id"):
        client.similar_items("no-such-item", Shopper(region="CN-ZJ"))


def test_sold_out_item_disappears_from_every_page_and_worker(served: tuple[Server, Path, str], client):
    server = served[0]
    shopper = Shopper(user_id="u-zj-loyal-01", member_brands=("Nike",))
    top = client.storefront(shopper).item_ids[0]
    client.update_items([peakrec.ItemUpdate(top, stock=0)])
    request = pb.StorefrontRequest(
        shopper=pb.Shopper(user_id="u-zj-loyal-01", member_brands=["Nike"]), page=pb.PageRequest(page_size=50)
    )
    for i in range(12):  # 12 connections over 2 workers
        stub = pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.bundle": i}))
        assert top not in stub.Storefront(request, timeout=10).item_ids


def test_hot_swap_to_a_new_build_under_load_and_corrupt_bundle_refused(
    served: tuple[Server, Path, str], catalogue: Path, client: peakrec.Client
):
    server, bundles, first = served
    time.sleep(1.1)  # a new version name (build time has second resolution)
    staging = bundles.parent / "staging"  # built aside: the server would follow a new CURRENT at once
    second = build(catalogue, staging)
    assert second != first
    shutil.move(staging / second, bundles / second)
    bad = bundles / "corrupt"
    shutil.copytree(bundles / second, bad)
    with open(bad / "items" / "price.npy", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\xff\xff\xff\xff")

    errors: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def load(i: int) -> None:
        stub = pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.swap": i}))
        request = pb.StorefrontRequest(shopper=pb.Shopper(user_id="u-smalltown-01"))
        for _ in range(3000):
            if stop.is_set():
                return
            try:
                versions.append(stub.Storefront(request, timeout=10).bundle_version)
            except grpc.RpcError as err:
                errors.append(f"{err.code()}: {err.details()}")

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as refused:
            client.reload_index("corrupt", wait_seconds=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert client.reload_index(second, wait_seconds=60) == second
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    assert versions[0] == first and versions[-1] == second and set(versions) == {first, second}
    assert {w["bundle_version"] for w in client.index_info()["workers"]} == {second}
