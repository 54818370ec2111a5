"""google.rpc.BadRequest error details: built from peakrec's field-first messages by
service/errors_detail.py, sent by a real grpcio server, read by a plain grpcio client and by
peakrec.Client (InvalidInputError.field_violations)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import peakrec
import pytest
from peakrec.errors import InvalidInputError
from peakrec.service.errors_detail import abort_with_details, field_violations, fields_named, status_for
from peakrec.v1 import recommender_pb2 as pb


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("page.page_size: 500 is above the maximum 100", ["page.page_size"]),
        ("shopper.region: unknown region code 'XX'", ["shopper.region"]),
        ("filters.price_min/price_max: must not be NaN", ["filters.price_min", "filters.price_max"]),
        ("query: empty", ["query"]),
        ("internal error: RuntimeError (logged)", []),  # not a field path: two words
        ("no field named here", []),
    ],
)
def test_fields_named_by_a_message(message: str, fields: list[str]):
    assert fields_named(message) == fields


def test_a_message_without_a_field_gets_no_details():
    status = status_for(grpc.StatusCode.INVALID_ARGUMENT, "something odd")
    assert dict(status.trailing_metadata).get("grpc-status-details-bin") is not None
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT and status.details == "something odd"


@pytest.fixture
def target() -> Iterator[str]:
    def storefront(request: pb.StorefrontRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        if request.page.page_size > 100:
            abort_with_details(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"page.page_size: {request.page.page_size} is above the maximum 100",
            )
        abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, "bad shopper", field="shopper.user_id")

    handler = grpc.unary_unary_rpc_method_handler(
        storefront,
        request_deserializer=pb.StorefrontRequest.FromString,
        response_serializer=pb.RecommendResponse.SerializeToString,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("peakrec.v1.Recommender", {"Storefront": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_a_plain_grpc_client_reads_the_field_violation(target: str):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/peakrec.v1.Recommender/Storefront",
            request_serializer=pb.StorefrontRequest.SerializeToString,
            response_deserializer=pb.RecommendResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            call(pb.StorefrontRequest(page=pb.PageRequest(page_size=500)), timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "page.page_size: 500 is above the maximum 100"
    assert field_violations(err) == [("page.page_size", "500 is above the maximum 100")]


def test_peakrec_client_exposes_field_violations(target: str):
    with peakrec.Client(target, timeout=5) as client:
        with pytest.raises(InvalidInputError) as info:
            client.storefront(page_size=10)
    assert info.value.field_violations == [("shopper.user_id", "bad shopper")]
    assert str(info.value) == "bad shopper"


def test_an_error_without_details_has_no_violations(target: str):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/peakrec.v1.Recommender/Nope")
        with pytest.raises(grpc.RpcError) as info:
            call(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED and field_violations(info.value) == []
