"""Optional per-request observability for `peakrec serve --access-log`: one log line per RPC with the
method, status code, latency, bundle version, degraded flag and item count (logger
``peakrec.access``, INFO; with ``--log-format json`` these are JSON fields).

It is a separate interceptor placed outermost, so it sees the final status of every call, shed ones
included, and costs nothing when off: :func:`chain` only adds it when asked.
"""

from __future__ import annotations

import logging
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
                code = context.code() or grpc.StatusCode.OK
                if isinstance(code, int):  # grpcio may report the raw integer
                    code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
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
    """``inner`` with the access-log interceptor in front when ``access`` is set."""
    return [AccessLogInterceptor(), *inner] if access else inner
