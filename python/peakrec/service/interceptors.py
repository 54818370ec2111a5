"""Server interceptors: one for admission, error mapping and metrics, one for the admin token.

Errors from the request path become the status codes gRPC defines for them, with the message naming
the field; nothing reaches the caller as UNKNOWN. The service interceptor wraps each method once and
reuses the wrapper: at ~4k RPCs/s per core, per-call handler objects and label look-ups show up.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from peakrec.errors import BundleError, InvalidInputError, NotFoundError
from peakrec.service import admission, errors_detail, metrics

log = logging.getLogger("peakrec.service")

# Health and reflection stay open and unmetered: probes and grpcurl carry no token.
UNGUARDED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
MAX_DETAILS = 1000  # characters of a status message: grpc's metadata limit is 8 KiB in all
TRACEBACK_EVERY = 10.0  # seconds between full tracebacks of the same unexpected error


class Unavailable(Exception):
    """The worker cannot serve now (no bundle loaded yet, or a swap that did not finish in time)."""


ERROR_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (BundleError, grpc.StatusCode.FAILED_PRECONDITION),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


class Refusal(Exception):
    """Answered without running the request path: (code, message)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str):
        super().__init__(message)
        self.code, self.reason = code, reason


class ServiceInterceptor(grpc.ServerInterceptor):
    """Per RPC:

    * admission: a call whose deadline has passed or is shorter than the method's recent service
      time gets DEADLINE_EXCEEDED, one that spent over half its deadline in a congested queue gets
      RESOURCE_EXHAUSTED, and during a drain calls that arrived after it began get UNAVAILABLE:
      none of them runs the request path. Calls grpcio itself refuses for its concurrency limit
      (``refusing()`` true when it is about to) are counted here, since they never reach a thread;
    * decoding: the request is parsed here, so an undecodable payload is INVALID_ARGUMENT;
    * error mapping: peakrec errors to status codes, anything unexpected logged (a full traceback
      at most every 10 s per kind) and answered INTERNAL;
    * metrics: count by code, latency, refusals by reason.

    Must be the innermost interceptor whose outcome depends on the call (the wrapper is cached per
    method), so a token check goes before it.
    """

    def __init__(self, refusing: Callable[[], bool] | None = None, served: Callable[[], None] | None = None):
        self.refusing = refusing
        self.served = served  # told of each call answered by the request path (the queue's bound)
        self.draining_since: float | None = None  # time.monotonic() when the drain began
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}
        self._refused: dict[str, tuple[Any, Any]] = {}
        self._logged: dict[tuple[str, str], float] = {}

    def start_draining(self) -> None:
        """Calls that arrive from now on are answered UNAVAILABLE; those already queued are served."""
        self.draining_since = time.monotonic()

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            handler = continuation(details)
            if (
                details.method.startswith(UNGUARDED_PREFIXES)
                or handler is None
                or handler.unary_unary is None
            ):
                return handler
            wrapped = self._wrapped[details.method] = self._wrap(details.method, handler)
            name = details.method.rsplit("/", 1)[-1]  # counters kept: grpcio's poll thread runs this
            self._refused[details.method] = (
                metrics.SHED.labels(name, "concurrency"),
                metrics.REQUESTS.labels(name, "RESOURCE_EXHAUSTED"),
            )
        if self.refusing is not None and self.refusing():  # grpcio refuses this one right after us
            for counter in self._refused[details.method]:
                counter.inc()
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner, decode = handler.unary_unary, handler.request_deserializer
        name = method.rsplit("/", 1)[-1]
        descriptor = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
        message_name = getattr(descriptor, "full_name", "request message")
        ok = metrics.REQUESTS.labels(name, "OK")
        latency = metrics.LATENCY.labels(name)
        service_time = [0.0]  # recent seconds per answered call (moving average), for the deadline check

        def admit(context: grpc.ServicerContext) -> None:
            waited, congested = admission.waited()
            since = self.draining_since
            if since is not None and (admission.arrived() or time.monotonic()) >= since:  # came in the drain
                raise Refusal(
                    grpc.StatusCode.UNAVAILABLE, "draining: this worker is shutting down; retry", "draining"
                )
            remaining = context.time_remaining()
            if remaining is None or remaining > 1e6:  # no deadline
                return
            if remaining <= 0 or remaining < service_time[0]:
                # Only answered calls update the estimate: let it decay on refusals too, so that one
                # slow call (a cold start) cannot lock out every call with a shorter deadline.
                service_time[0] *= 0.9
                raise Refusal(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline: {remaining * 1e3:.1f} ms left after {waited * 1e3:.1f} ms queued, "
                    f"{name} takes ~{service_time[0] * 1e3:.1f} ms now; not started",
                    "deadline",
                )
            if congested and waited > remaining:
                raise Refusal(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"overloaded: waited {waited * 1e3:.0f} ms of its deadline in this worker's queue; "
                    "retry with backoff",
                    "queue",
                )

        def behaviour(payload: bytes, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                admit(context)
                try:
                    request = decode(payload) if decode else payload
                except DecodeError as err:
                    raise InvalidInputError(f"request: not a valid {message_name} ({err})") from None
                reply = inner(request, context)
            except Refusal as refusal:
                metrics.SHED.labels(name, refusal.reason).inc()
                self._abort(context, name, refusal.code, str(refusal))
            except Exception as err:
                code = context.code()
                if code not in (None, grpc.StatusCode.OK):  # the servicer aborted with a chosen code
                    metrics.REQUESTS.labels(name, code.name).inc()
                    raise
                code = next((c for kind, c in ERROR_CODES if isinstance(err, kind)), None)
                if code is None:
                    self._log_unexpected(method, err)
                    code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__} (logged)"
                else:
                    message = str(err)
                latency.observe(time.perf_counter() - start)
                self._abort(context, name, code, message)
            elapsed = time.perf_counter() - start
            latency.observe(elapsed)
            service_time[0] += (elapsed - service_time[0]) * (0.05 if service_time[0] else 1.0)
            if self.served is not None:
                self.served()
            ok.inc()
            return reply

        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=None, response_serializer=handler.response_serializer
        )

    @staticmethod
    def _abort(context: grpc.ServicerContext, name: str, code: grpc.StatusCode, message: str) -> None:
        metrics.REQUESTS.labels(name, code.name).inc()
        if len(message) > MAX_DETAILS:
            message = message[: MAX_DETAILS - 1] + "…"
        if code == grpc.StatusCode.INVALID_ARGUMENT:  # programs read the field from a BadRequest detail
            errors_detail.abort_with_details(context, code, message)
        context.abort(code, message)

    def _log_unexpected(self, method: str, err: Exception) -> None:
        """A full traceback per kind of error at most every TRACEBACK_EVERY seconds: a flood of one
        bad request must not flood the log."""
        key, now = (method, type(err).__name__), time.monotonic()
        if now - self._logged.get(key, -TRACEBACK_EVERY) >= TRACEBACK_EVERY:
            self._logged[key] = now
            log.exception("%s failed (further %s in %gs are not logged)", method, key[1], TRACEBACK_EVERY)


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
