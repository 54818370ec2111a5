"""Optional per-request observability, as interceptors placed in front of the service's own:

* ``peakrec serve --access-log``: one log line per RPC with the method, status code, latency, bundle
  version, degraded flag and item count (logger ``peakrec.access``, INFO; with ``--log-format json``
  these are JSON fields).
* OpenTelemetry: a server span per RPC with child spans per pipeline stage, when the ``otel`` extra
  is installed and tracing is configured by the standard OTEL_* environment variables.

Outermost, they see the final status of every call, shed ones included; :func:`chain` adds each only
when it is on, so the request path is unchanged otherwise.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import grpc

access_log = logging.getLogger("peakrec.access")

# Health checks and reflection would drown the log at a probe every 2 s per pod.
QUIET_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class AccessLogInterceptor(grpc.ServerInterceptor):
    """Logs one line per unary RPC after it finishes (health and reflection excepted)."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if details.method.startswith(QUIET_PREFIXES) or handler is None or handler.unary_unary is None:
            return handler
        # The inner handler may differ per call (a token check refuses one caller, admits the next),
        # so it is wrapped per call; the wrapper itself is a closure, cheap beside the RPC.
        return self._wrap(details.method, handler)

    @staticmethod
    def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        name = method.rsplit("/", 1)[-1]

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            reply = None
            try:
                reply = inner(request, context)
                return reply
            finally:
                code = _code_of(context)
                fields = {
                    "rpc": name,
                    "code": code.name,
                    "latency_ms": round((time.perf_counter() - start) * 1000, 3),
                    "bundle_version": getattr(reply, "bundle_version", ""),
                    "degraded": bool(getattr(reply, "degraded", False)),
                    "items": len(getattr(reply, "item_ids", ())),
                    "peer": context.peer(),
                }
                access_log.info(
                    "%(rpc)s %(code)s %(latency_ms).1fms bundle=%(bundle_version)s degraded=%(degraded)s "
                    "items=%(items)d peer=%(peer)s",
                    fields,
                    extra=fields,
                )

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def chain(access: bool, inner: list[grpc.ServerInterceptor]) -> list[grpc.ServerInterceptor]:
    """``inner`` with the tracing interceptor in front when tracing is configured (:func:`tracer`),
    and the access-log interceptor when ``access`` is set."""
    outer: list[grpc.ServerInterceptor] = []
    spans = tracer()
    if spans is not None:
        outer.append(TracingInterceptor(spans))
    if access:
        outer.append(AccessLogInterceptor())
    return [*outer, *inner]


# -- OpenTelemetry ---------------------------------------------------------------------------------------
# Optional: only with the `otel` extra installed AND tracing configured by the standard environment
# variables (OTEL_TRACES_EXPORTER=otlp|console, or an OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT), or when
# the application already installed a tracer provider. Otherwise no tracing code runs at all.

_stages = threading.local()  # the stage timings of the RPC running on this thread


def record_stages(stage_seconds: dict[str, float]) -> None:
    """Called by a servicer with the pipeline's measured stage durations (seconds, in order); the
    tracing interceptor turns them into child spans of the RPC's span. A no-op when not tracing."""
    sink = getattr(_stages, "sink", None)
    if sink is not None:
        sink.update(stage_seconds)


def tracing_configured(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(exporter or endpoint)


def tracer(environ: dict[str, str] | None = None) -> Any:
    """A tracer when tracing is configured, else None. Sets up the SDK's tracer provider from the
    environment (service name OTEL_SERVICE_NAME, default "peakrec"; batch export) unless the
    application already installed one."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return trace.get_tracer("peakrec.service")  # configured by the application
    env = os.environ if environ is None else environ
    if not tracing_configured(env):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        logging.getLogger("peakrec.service").warning(
            "OTEL_* tracing is configured but opentelemetry-sdk is missing: pip install 'peakrec[otel]'"
        )
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, TLS from OTEL_EXPORTER_OTLP_*
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "peakrec")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer("peakrec.service")


class TracingInterceptor(grpc.ServerInterceptor):
    """A SERVER span per unary RPC (W3C trace context from the call's metadata), named
    ``package.Service/Method`` with the gRPC semantic-convention attributes plus
    ``peakrec.bundle_version``, ``peakrec.degraded`` and ``peakrec.items``, and one child span per
    pipeline stage from the durations the servicer measured (laid end to end from the RPC's start)."""

    def __init__(self, tracer: Any):
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.tracer, self.propagate, self.trace = tracer, propagate, trace
        self.kind, self.status, self.error = SpanKind.SERVER, Status, StatusCode.ERROR

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if details.method.startswith(QUIET_PREFIXES) or handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        service, method = details.method.lstrip("/").rsplit("/", 1)
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            parent = self.propagate.extract(metadata)
            attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
            with self.tracer.start_as_current_span(
                f"{service}/{method}", context=parent, kind=self.kind, attributes=attributes,
                record_exception=False, set_status_on_exception=False,
            ) as span:  # fmt: skip
                start_ns = getattr(span, "start_time", None) or time.time_ns()
                _stages.sink = stages = {}
                reply = None
                try:
                    reply = inner(request, context)
                    return reply
                finally:
                    _stages.sink = None
                    code = _code_of(context)
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code is not grpc.StatusCode.OK:
                        span.set_status(self.status(self.error, code.name))
                    if reply is not None:
                        span.set_attribute("peakrec.bundle_version", getattr(reply, "bundle_version", ""))
                        span.set_attribute("peakrec.degraded", bool(getattr(reply, "degraded", False)))
                        span.set_attribute("peakrec.items", len(getattr(reply, "item_ids", ())))
                    at = start_ns
                    for stage, seconds in stages.items():
                        end = at + int(seconds * 1e9)
                        self.tracer.start_span(f"stage {stage}", start_time=at).end(end_time=end)
                        at = end

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_of(context: grpc.ServicerContext) -> grpc.StatusCode:
    code = context.code() or grpc.StatusCode.OK
    if isinstance(code, int):  # grpcio may report the raw integer
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    return code
