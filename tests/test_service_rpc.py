"""Each RPC, health, reflection and every error code, over real gRPC on loopback against
`peakrec serve` started as a subprocess (with the stand-in engine: these test the service layer)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import peakrec
import pytest
from fake_engine import write_bundle
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from peakrec.pipeline.types import Shopper
from peakrec.v1 import recommender_pb2 as pb
from service_harness import Server, channel, storefront

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bundles = tmp_path_factory.mktemp("rpc") / "bundles"
    write_bundle(bundles, "v1")
    write_bundle(bundles, "broken", current=False)
    (bundles / "broken" / "fake.json").write_text("{not json")
    with Server(bundles, workers=2, engine="fake_engine", args=("--admin-token", "s3cret")) as s:
        yield s


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_storefront_returns_a_page_with_scores_reasons_and_details(server: Server):
    reply = server.stub().Storefront(storefront(page_size=5, explain=True, with_details=True), timeout=5)
    assert list(reply.item_ids) == ["I0", "I1", "I2", "I3", "I4"]
    assert list(reply.scores) == sorted(reply.scores, reverse=True)
    assert list(reply.reasons) == ["popular"] * 5 and reply.titles[0] == "item 0 (v1)"
    assert reply.brands[:2] == ["acme", "zeta"] and reply.prices[0] == pytest.approx(9.9)
    assert reply.bundle_version == "v1" and not reply.degraded and reply.eligible_count == 60


def test_search_and_similar_items_answer(server: Server):
    stub = server.stub()
    assert len(stub.Search(pb.SearchRequest(query="dress"), timeout=5).item_ids) == 20
    similar = stub.SimilarItems(
        pb.SimilarItemsRequest(item_id="I0", page=pb.PageRequest(page_size=3)), timeout=5
    )
    assert list(similar.item_ids) == ["I1", "I2", "I3"]


def test_client_gives_typed_pages(server: Server):
    with peakrec.Client(server.target, timeout=5) as client:
        page = client.storefront(Shopper(region="BR"), page_size=2, details=True, explain=True)
        assert [i.item_id for i in page.items] == ["I0", "I1"]
        assert page.items[0].brand == "acme" and page.items[0].reason == "popular" and page.cold
        with pytest.raises(peakrec.errors.NotFoundError, match="item_id"):
            client.similar_items("NOPE")
        with pytest.raises(peakrec.errors.InvalidInputError, match="shopper.region"):
            client.storefront(Shopper(region="XX"))


@pytest.mark.parametrize("target", ["target", "admin_target"])
def test_health_serves_on_both_ports(server: Server, target: str):
    stub = health_pb2_grpc.HealthStub(channel(getattr(server, target)))
    for service in ("", "peakrec.v1.Recommender" if target == "target" else "peakrec.v1.Admin"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _listed(target: str) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel(target))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return {s.name for s in reply.list_services_response.service}


def test_reflection_lists_the_services_of_each_port(server: Server):
    health, refl = "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"
    assert _listed(server.target) == {"peakrec.v1.Recommender", health, refl}
    assert _listed(server.admin_target) == {"peakrec.v1.Admin", health, refl}


def test_admin_is_not_reachable_through_the_public_port(server: Server):
    from peakrec.v1 import recommender_pb2_grpc as pb_grpc

    public_admin = pb_grpc.AdminStub(channel(server.target))
    code, _ = code_of(lambda: public_admin.IndexInfo(pb.IndexInfoRequest(), timeout=5))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_admin_without_the_token_is_unauthenticated(server: Server):
    code, _ = code_of(lambda: server.admin().IndexInfo(pb.IndexInfoRequest(), timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    with peakrec.Client(server.target, admin_target=server.admin_target, admin_token="s3cret") as client:
        assert client.index_info()["bundle_version"] == "v1"


@pytest.mark.parametrize(
    "request_, code, field",
    [
        (storefront(page_size=100_000), grpc.StatusCode.INVALID_ARGUMENT, "page.page_size"),
        (
            pb.StorefrontRequest(shopper=pb.Shopper(region="XX")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "shopper.region",
        ),
        (
            pb.StorefrontRequest(filters=pb.Filters(price_min=5, price_max=1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "filters.price_min",
        ),
        (pb.SimilarItemsRequest(item_id="NOPE"), grpc.StatusCode.NOT_FOUND, "item_id"),
        (pb.SimilarItemsRequest(), grpc.StatusCode.INVALID_ARGUMENT, "item_id"),
        (pb.SearchRequest(query=" "), grpc.StatusCode.INVALID_ARGUMENT, "query"),
    ],
)
def test_bad_requests_get_their_status_code_naming_the_field(server: Server, request_, code, field):
    stub = server.stub()
    method = {
        pb.StorefrontRequest: stub.Storefront,
        pb.SimilarItemsRequest: stub.SimilarItems,
        pb.SearchRequest: stub.Search,
    }[type(request_)]
    got, details = code_of(lambda: method(request_, timeout=5))
    assert got == code and field in details and "Traceback" not in details


def test_admin_errors_name_the_field(server: Server):
    admin = server.admin()
    md = (("authorization", "Bearer s3cret"),)
    unknown = pb.UpdateItemsRequest(updates=[pb.ItemUpdate(item_id="NOPE", stock=0)])
    assert code_of(lambda: admin.UpdateItems(unknown, timeout=5, metadata=md))[0] == grpc.StatusCode.NOT_FOUND
    negative = pb.UpdateItemsRequest(updates=[pb.ItemUpdate(item_id="I1", stock=-4)])
    code, details = code_of(lambda: admin.UpdateItems(negative, timeout=5, metadata=md))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "updates[0].stock" in details
    missing = pb.ReloadIndexRequest(version="v9")
    assert code_of(lambda: admin.ReloadIndex(missing, timeout=5, metadata=md))[0] == grpc.StatusCode.NOT_FOUND
    corrupt = pb.ReloadIndexRequest(version="broken")
    code, details = code_of(lambda: admin.ReloadIndex(corrupt, timeout=5, metadata=md))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "broken" in details
    # the corrupt bundle was refused: the old one keeps serving and CURRENT is unchanged
    assert server.stub().Storefront(storefront(), timeout=5).bundle_version == "v1"
    assert (server.bundles / "CURRENT").read_text().strip() == "v1"


def test_short_deadline_answers_degraded_not_deadline_exceeded(server: Server):
    slow = pb.StorefrontRequest(shopper=pb.Shopper(context={"sleep_ms": "2000"}))
    reply = server.stub().Storefront(slow, timeout=0.3)
    assert reply.degraded and len(reply.item_ids) == 20


def test_metrics_endpoint_sums_the_workers(server: Server):
    server.stub().Storefront(storefront(), timeout=5)
    text = server.metrics_text()
    assert 'peakrec_requests_total{code="OK",method="Storefront"}' in text
    assert "peakrec_request_seconds_bucket" in text and "peakrec_stage_seconds_bucket" in text
    assert "peakrec_bundle_info{pid=" in text and 'version="v1"' in text


def test_admin_on_a_public_address_needs_a_token(tmp_path: Path):
    write_bundle(tmp_path, "v1")
    cmd = [
        sys.executable,
        "-m",
        "peakrec.cli",
        "serve",
        "--bundles",
        str(tmp_path),
        "--admin-host",
        "0.0.0.0",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--admin-token" in done.stderr


def test_query_cli_prints_a_table(server: Server):
    cmd = [
        sys.executable,
        "-m",
        "peakrec.cli",
        "query",
        "storefront",
        "--target",
        server.target,
        "--size",
        "3",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:6] == ["#", "item", "title", "brand", "price", "score"]
    assert lines[1].split()[:2] == ["1", "I0"] and "popular" in lines[1] and "(bundle v1" in lines[-1]


def test_query_cli_reports_a_status_code_not_a_traceback(server: Server):
    cmd = [sys.executable, "-m", "peakrec.cli", "query", "similar", "NOPE", "--target", server.target]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "item_id" in done.stderr and "Traceback" not in done.stderr


def test_serve_without_current_says_so(tmp_path: Path):
    cmd = [sys.executable, "-m", "peakrec.cli", "serve", "--bundles", str(tmp_path), "--workers", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "CURRENT" in done.stderr


def test_an_engine_bug_is_internal_without_a_traceback(server: Server):
    request = pb.StorefrontRequest(shopper=pb.Shopper(context={"boom": "1"}))
    code, details = code_of(lambda: server.stub().Storefront(request, timeout=5))
    assert code == grpc.StatusCode.INTERNAL and details == "internal error: RuntimeError (logged)"
    assert "a bug in the engine" in server.log.read_text()  # the traceback stays in the server log


def test_a_second_server_on_a_taken_port_is_refused(server: Server):
    cmd = [
        sys.executable,
        "-m",
        "peakrec.cli",
        "serve",
        "--bundles",
        str(server.bundles),
        "--host",
        "127.0.0.1",
    ]
    cmd += ["--port", str(server.port), "--admin-port", str(server.admin_port + 1000), "--workers", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"--port {server.port}" in done.stderr
