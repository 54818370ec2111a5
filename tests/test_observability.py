"""OpenTelemetry tracing (service/observability.py): off unless configured; when on, a SERVER span per
RPC continuing the caller's W3C trace, with gRPC attributes, the status, and child spans from the
stage timings a servicer records. Spans are read from the SDK's in-memory exporter, and once from a
real `peakrec serve` with the console exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from fake_engine import write_bundle
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from peakrec.service import observability
from peakrec.v1 import recommender_pb2 as pb
from service_harness import Server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_when_configured(env: dict[str, str], on: bool):
    assert observability.tracing_configured(env) is on


def test_unconfigured_chain_adds_nothing(monkeypatch):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)

    class Inner(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            return continuation(details)

    inner = [Inner()]
    assert observability.chain(False, inner) == inner
    assert [type(i).__name__ for i in observability.chain(True, inner)][0] == "AccessLogInterceptor"


@pytest.fixture
def traced() -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def storefront(request: pb.StorefrontRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        observability.record_stages({"resolve": 0.001, "eligibility": 0.002, "retrieve": 0.003})
        if request.page.page_size > 100:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page.page_size: too large")
        return pb.RecommendResponse(item_ids=["A", "B"], scores=[2, 1], bundle_version="v7", degraded=True)

    handler = grpc.unary_unary_rpc_method_handler(
        storefront,
        request_deserializer=pb.StorefrontRequest.FromString,
        response_serializer=pb.RecommendResponse.SerializeToString,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[observability.TracingInterceptor(provider.get_tracer("test"))],
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("peakrec.v1.Recommender", {"Storefront": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", exporter
    finally:
        server.stop(None)


def _call(target: str, page_size: int) -> None:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/peakrec.v1.Recommender/Storefront",
            request_serializer=pb.StorefrontRequest.SerializeToString,
            response_deserializer=pb.RecommendResponse.FromString,
        )
        call(
            pb.StorefrontRequest(page=pb.PageRequest(page_size=page_size)),
            timeout=5,
            metadata=(("traceparent", TRACEPARENT),),
        )


def test_a_server_span_continues_the_callers_trace(traced):
    target, exporter = traced
    _call(target, 10)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server = spans["peakrec.v1.Recommender/Storefront"]
    assert server.kind == SpanKind.SERVER and f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.attributes["rpc.system"] == "grpc" and server.attributes["rpc.method"] == "Storefront"
    assert server.attributes["rpc.service"] == "peakrec.v1.Recommender"
    assert server.attributes["rpc.grpc.status_code"] == 0 and server.status.status_code == StatusCode.UNSET
    assert server.attributes["peakrec.bundle_version"] == "v7" and server.attributes["peakrec.degraded"]
    assert server.attributes["peakrec.items"] == 2


def test_stage_timings_become_child_spans_end_to_end(traced):
    target, exporter = traced
    _call(target, 10)
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    stages = [s for s in spans if s.name.startswith("stage ")]
    assert [s.name for s in stages] == ["stage resolve", "stage eligibility", "stage retrieve"]
    assert all(s.parent.span_id == server.context.span_id for s in stages)
    assert [round((s.end_time - s.start_time) / 1e6) for s in stages] == [1, 2, 3]  # ms
    assert stages[0].start_time == server.start_time
    assert all(a.end_time == b.start_time for a, b in zip(stages, stages[1:]))


def test_an_error_status_marks_the_span(traced):
    target, exporter = traced
    with pytest.raises(grpc.RpcError):
        _call(target, 500)
    server = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.status.status_code == StatusCode.ERROR and "peakrec.bundle_version" not in server.attributes


def test_record_stages_outside_a_traced_rpc_is_a_no_op():
    observability.record_stages({"resolve": 0.1})


@pytest.mark.slow
def test_peakrec_serve_exports_spans_when_configured(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "peakrec-test")
    bundles = tmp_path / "bundles"
    write_bundle(bundles, "v1")
    server = Server(bundles, workers=1, engine="fake_engine").start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            call = channel.unary_unary(
                "/peakrec.v1.Recommender/Storefront",
                request_serializer=pb.StorefrontRequest.SerializeToString,
                response_deserializer=pb.RecommendResponse.FromString,
            )
            call(pb.StorefrontRequest(), timeout=5, metadata=(("traceparent", TRACEPARENT),))
        assert server.stop() == 0  # the worker flushes its spans as it exits
    finally:
        server.kill()
    text = "".join(server.lines)
    decoder, spans, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        span, end = decoder.raw_decode(text, at)
        spans.append(span)
        at = text.find("{", end)
    (storefront,) = [s for s in spans if s["name"] == "peakrec.v1.Recommender/Storefront"]
    assert storefront["context"]["trace_id"] == f"0x{TRACE_ID}" and storefront["kind"] == "SpanKind.SERVER"
    assert storefront["resource"]["attributes"]["service.name"] == "peakrec-test"
    assert storefront["attributes"]["peakrec.bundle_version"] == "v1"
