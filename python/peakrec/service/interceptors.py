"""Server interceptors: one for metrics, admission (load shedding) and error mapping, one for the admin token.

Errors from the request path become the status codes gRPC defines for them, with the message naming
the field; nothing reaches the caller as UNKNOWN. The service interceptor wraps each method once and
reuses the wrapper: at ~4k RPCs/s per core, per-call handler objects and label look-ups show up.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any

import grpc

from peakrec.errors import BundleError, InvalidInputError, NotFoundError
from peakrec.service import metrics

log = logging.getLogger("peakrec.service")

# Health and reflection stay open and unmetered: probes and grpcurl carry no token.
UNGUARDED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class Unavailable(Exception):
    """The worker cannot serve now (no bundle loaded yet, or a swap that did not finish in time)."""


ERROR_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (BundleError, grpc.StatusCode.FAILED_PRECONDITION),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


class ServiceInterceptor(grpc.ServerInterceptor):
    """Per RPC: admission (at most ``limit`` in flight in this worker, the rest get RESOURCE_EXHAUSTED
    at once so admitted requests keep their latency), error mapping (peakrec errors to status codes,
    anything unexpected logged and answered INTERNAL), and metrics (count by code, latency).

    Must be the innermost interceptor whose outcome depends on the call (the wrapper is cached per
    method), so a token check goes before it.
    """

    def __init__(self, limit: int | None = None):
        self.limit = limit
        self._lock = threading.Lock()  # guards in_flight (a plain lock: Semaphore is pure Python)
        self.in_flight = 0
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        wrapped = self._wrapped.get(details.method)
        if wrapped is not None:
            return wrapped
        handler = continuation(details)
        if details.method.startswith(UNGUARDED_PREFIXES) or handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(details.method, handler)
        self._wrapped[details.method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        name = method.rsplit("/", 1)[-1]
        limit, lock = self.limit, self._lock
        ok = metrics.REQUESTS.labels(name, "OK")
        latency = metrics.LATENCY.labels(name)
        shed = metrics.SHED.labels(name)
        overloaded = f"overloaded: {limit} requests in flight in this worker; retry with backoff"

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            with lock:
                admitted = not limit or self.in_flight < limit
                if admitted:
                    self.in_flight += 1
            if not admitted:
                shed.inc()
                metrics.REQUESTS.labels(name, "RESOURCE_EXHAUSTED").inc()
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, overloaded)
            try:
                reply = inner(request, context)
            except Exception as err:
                code = context.code()
                if code in (None, grpc.StatusCode.OK):  # not yet aborted with a chosen code
                    code = next((c for kind, c in ERROR_CODES if isinstance(err, kind)), None)
                    if code is None:
                        log.exception("%s failed", method)
                        code, message = (
                            grpc.StatusCode.INTERNAL,
                            f"internal error: {type(err).__name__} (logged)",
                        )
                    else:
                        message = str(err)
                    metrics.REQUESTS.labels(name, code.name).inc()
                    context.abort(code, message)
                metrics.REQUESTS.labels(name, code.name).inc()
                raise
            finally:
                with lock:
                    self.in_flight -= 1
                latency.observe(time.perf_counter() - start)
            ok.inc()
            return reply

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class TokenInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` on every admin RPC (health and reflection excepted)."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith(UNGUARDED_PREFIXES):
            return continuation(details)
        sent = dict(details.invocation_metadata or ()).get("authorization", "")
        if isinstance(sent, str):
            sent = sent.encode()
        if hmac.compare_digest(sent, self._expected):
            return continuation(details)

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "admin: missing or wrong authorization token")

        handler = continuation(details)
        if handler is None:
            return None
        return grpc.unary_unary_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
