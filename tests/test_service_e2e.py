"""End to end through `peakrec serve` with the real request path (`peakrec.Recommender`) over a
small synthetic catalogue: pages, cold shoppers, live updates across workers, deadlines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import peakrec
import pytest
from peakrec.pipeline.types import Shopper
from peakrec.service.statefile import ItemUpdate
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc
from service_harness import Server, channel
from synthetic_engine import write_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bundles = tmp_path_factory.mktemp("e2e") / "bundles"
    write_bundle(bundles, "s1")
    with Server(bundles, workers=2, engine="synthetic_engine") as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[peakrec.Client]:
    with peakrec.Client(server.target, admin_target=server.admin_target, timeout=10) as c:
        yield c


def test_known_shopper_gets_a_full_explained_page(client: peakrec.Client):
    page = client.storefront(
        Shopper(user_id="U000001", region="R001"), page_size=10, explain=True, details=True
    )
    assert len(page.items) == 10 and not page.degraded and not page.cold
    assert all(i.reason.startswith("found by") and i.title and i.brand for i in page.items)
    assert [i.score for i in page.items] == sorted((i.score for i in page.items), reverse=True)


def test_cold_shopper_is_served_from_context(client: peakrec.Client):
    page = client.storefront(Shopper(region="R002", context={"device": "ios", "segment": "seg-3"}))
    assert page.cold and len(page.items) == 20


def test_similar_items_excludes_the_item_itself(client: peakrec.Client):
    page = client.similar_items("I0000001", Shopper(region="R003"), page_size=5)
    assert len(page.items) == 5 and "I0000001" not in page.item_ids


def test_request_path_errors_become_status_codes(client: peakrec.Client):
    with pytest.raises(peakrec.errors.NotFoundError, match="item_id"):
        client.similar_items("NOPE", Shopper(region="R003"))
    with pytest.raises(peakrec.errors.InvalidInputError, match="region"):
        client.storefront(Shopper())


def test_sold_out_item_disappears_from_every_worker(server: Server, client: peakrec.Client):
    shopper = pb.Shopper(region="R003")
    request = pb.SimilarItemsRequest(item_id="I0000002", shopper=shopper, page=pb.PageRequest(page_size=5))
    stubs = [pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.e2e": i})) for i in range(16)]
    top = stubs[0].SimilarItems(request, timeout=10).item_ids[0]
    client.update_items([ItemUpdate(top, stock=0)])
    for stub in stubs:  # 16 connections over 2 workers
        assert top not in stub.SimilarItems(request, timeout=10).item_ids


def test_short_deadline_gives_a_degraded_page_not_an_error(server: Server):
    stub = server.stub()
    request = pb.StorefrontRequest(shopper=pb.Shopper(user_id="U000001", region="R001"))
    stub.Storefront(request, timeout=10)  # warm the connection
    replies = []
    # bracket the hop's own latency (which a busy machine stretches) until a degraded page comes back
    for timeout in [0.0021, 0.0023, 0.0026, 0.003, 0.0035, 0.004, 0.005, 0.007, 0.01] * 20:
        if any(r.degraded for r in replies):
            break
        try:
            replies.append(stub.Storefront(request, timeout=timeout))
        except grpc.RpcError as err:  # a deadline shorter than the network hop itself
            assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert any(r.degraded and len(r.item_ids) == 20 for r in replies)


def test_low_selectivity_pages_follow_updates_in_every_worker(tmp_path: Path):
    """Kept eligibility (docs/retrieval.md): after UpdateItems takes 90% of the items off sale,
    every worker scans only the rest, and an item put back on sale reaches every worker's page."""
    bundles = tmp_path / "bundles"
    write_bundle(bundles, "k1")
    with (
        Server(bundles, workers=2, engine="synthetic_engine") as server,
        peakrec.Client(server.target, admin_target=server.admin_target, timeout=10) as client,
    ):
        request = pb.SimilarItemsRequest(
            item_id="I0000002", shopper=pb.Shopper(region="R003"), page=pb.PageRequest(page_size=5)
        )
        stubs = [
            pb_grpc.RecommenderStub(channel(server.target, **{"peakrec.test.kept": i})) for i in range(16)
        ]
        top = stubs[0].SimilarItems(request, timeout=10).item_ids[0]
        on_sale = {f"I{i:07d}" for i in range(0, 3000, 10)} - {top}
        client.update_items([ItemUpdate(f"I{i:07d}", available=f"I{i:07d}" in on_sale) for i in range(3000)])
        for stub in stubs:  # 16 connections over 2 workers
            assert set(stub.SimilarItems(request, timeout=10).item_ids) <= on_sale
        client.update_items([ItemUpdate(top, available=True)])
        for stub in stubs:
            assert stub.SimilarItems(request, timeout=10).item_ids[0] == top
