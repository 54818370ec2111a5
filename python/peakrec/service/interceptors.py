"""Server interceptors: metrics, admission (load shedding), admin token, and error mapping.

Each wraps the unary-unary behaviour of a method. Errors from the request path become the status codes
gRPC defines for them, with the message naming the field; nothing reaches the caller as UNKNOWN.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from peakrec.errors import BundleError, DegradedError, InvalidInputError, NotFoundError
from peakrec.service import metrics

log = logging.getLogger("peakrec.service")

# Health and reflection stay open: probes and grpcurl carry no token.
UNGUARDED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class Unavailable(Exception):
    """The worker cannot serve now (no bundle loaded yet, or draining)."""


def _wrap(handler: grpc.RpcMethodHandler | None, wrapper: Callable[..., Any]) -> Any:
    if handler is None or handler.unary_unary is None:
        return handler
    inner = handler.unary_unary

    def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        return wrapper(inner, request, context)

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every RPC by status code and times it."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        if method.startswith(UNGUARDED_PREFIXES):
            return continuation(details)
        name = _short(method)

        def measured(inner: Any, request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            code = "OK"
            try:
                return inner(request, context)
            except BaseException:
                code = context.code().name if context.code() is not None else "UNKNOWN"
                raise
            finally:
                if code == "OK" and context.code() not in (None, grpc.StatusCode.OK):
                    code = context.code().name
                metrics.REQUESTS.labels(name, code).inc()
                metrics.LATENCY.labels(name).observe(time.perf_counter() - start)

        return _wrap(continuation(details), measured)


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Admits at most ``limit`` RPCs at once in this worker; the rest get RESOURCE_EXHAUSTED at once,
    so admitted requests keep their latency instead of queueing behind a burst."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        if method.startswith(UNGUARDED_PREFIXES):
            return continuation(details)
        name = _short(method)

        def admitted(inner: Any, request: Any, context: grpc.ServicerContext) -> Any:
            if not self._slots.acquire(blocking=False):
                metrics.SHED.labels(name).inc()
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"overloaded: {self.limit} requests in flight in this worker; retry with backoff",
                )
            try:
                return inner(request, context)
            finally:
                self._slots.release()

        return _wrap(continuation(details), admitted)


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


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps peakrec's exceptions to status codes; anything unexpected is logged and becomes INTERNAL."""

    CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
        (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
        (NotFoundError, grpc.StatusCode.NOT_FOUND),
        (BundleError, grpc.StatusCode.FAILED_PRECONDITION),
        (Unavailable, grpc.StatusCode.UNAVAILABLE),
        (DegradedError, grpc.StatusCode.DEADLINE_EXCEEDED),
    )

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith(UNGUARDED_PREFIXES):
            return continuation(details)

        def mapped(inner: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return inner(request, context)
            except Exception as err:
                if context.code() not in (None, grpc.StatusCode.OK):
                    raise  # already aborted with a chosen code
                for kind, code in self.CODES:
                    if isinstance(err, kind):
                        context.abort(code, str(err))
                log.exception("%s failed", details.method)
                context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__} (logged)")

        return _wrap(continuation(details), mapped)
