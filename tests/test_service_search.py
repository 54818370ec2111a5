"""Search over gRPC as users run it: `peakrec demo-data` → `peakrec build` → `peakrec serve`, then a
real client, raw stubs (status codes) and `peakrec query search`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grpc
import peakrec
import pytest
from peakrec.pipeline.types import Filters, Shopper
from peakrec.v1 import recommender_pb2 as pb
from service_harness import Server

pytestmark = pytest.mark.slow


def peakrec_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peakrec.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("search") / "data"
    bundles = data.parent / "bundles"
    assert peakrec_cli("demo-data", "--items", "2000", "--users", "300", "--out", str(data)).returncode == 0
    done = peakrec_cli(
        "build", "--items", str(data / "items.jsonl"), "--users", str(data / "users.jsonl"),
        "--item-vectors", str(data / "item_vectors.npy"), "--user-vectors", str(data / "user_vectors.npy"),
        "--config", str(data / "build.toml"), "--quiet", "--out", str(bundles),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Server(bundles, workers=1) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[peakrec.Client]:
    with peakrec.Client(server.target, timeout=10) as c:
        yield c


def test_search_returns_an_explained_page_of_matches(client: peakrec.Client):
    page = client.search(
        "连衣裙 floral dress", Shopper(user_id="u-zj-loyal-01"), page_size=10, explain=True, details=True
    )
    assert len(page.items) == 10 and not page.degraded
    assert all("连衣裙" in i.title for i in page.items[:5])
    assert all(i.reason.startswith("found by bm25") for i in page.items[:5])


def test_search_filters_and_paging_over_grpc(client: peakrec.Client):
    shopper = Shopper(region="CN-ZJ")
    nike = client.search(
        "跑步鞋 running shoes", shopper, filters=Filters(brands_allow=("Nike",)), details=True
    )
    assert nike.items and {i.brand for i in nike.items} == {"Nike"}
    whole = client.search("dress", shopper, page_size=10)
    first = client.search("dress", shopper, page_size=5, page=0)
    second = client.search("dress", shopper, page_size=5, page=1)
    assert first.item_ids + second.item_ids == whole.item_ids


@pytest.mark.parametrize("query", ["", "   ", "x" * 257])
def test_bad_query_is_invalid_argument_naming_query(server: Server, query: str):
    with pytest.raises(grpc.RpcError) as err:
        server.stub().Search(pb.SearchRequest(query=query, shopper=pb.Shopper(region="CN-ZJ")), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query" in err.value.details()


def test_query_without_known_tokens_is_degraded(client: peakrec.Client):
    page = client.search("qqzzxxv", Shopper(region="CN-ZJ"), page_size=10)
    assert page.degraded and len(page.items) == 10


def test_query_search_prints_the_table(server: Server):
    done = peakrec_cli(
        "query", "search", "连衣裙 red dress", "--target", server.target, "--user", "u-zj-loyal-01"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "item", "title"] and len(lines) == 12
    assert "found by" in lines[1] and "bundle" in lines[-1]
    bad = peakrec_cli("query", "search", " ", "--target", server.target)
    assert bad.returncode != 0 and "query" in bad.stderr  # refused before or by the server, by name
