"""`peakrec.Client`: a typed, deadline-aware client of the peakrec.v1 gRPC services."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from peakrec.errors import InvalidInputError, NotFoundError
from peakrec.pipeline.types import Filters, Shopper
from peakrec.service.statefile import ItemUpdate
from peakrec.service.throttle import SHED, AdaptiveThrottle
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc

__all__ = ["Client", "Item", "Page", "ItemUpdate", "retry_service_config"]


def retry_service_config(attempts: int = 4) -> str:
    """gRPC service config (JSON) retrying calls to peakrec's services on UNAVAILABLE only, with
    exponential backoff and jitter: 50 ms, 100 ms, 200 ms ... capped at 1 s.

    UNAVAILABLE means the call did not run (no connection, worker restarting or draining, no bundle
    yet), and every peakrec RPC is safe to repeat (updates carry absolute values). RESOURCE_EXHAUSTED
    (load shed) and DEADLINE_EXCEEDED are not retried: retrying into an overloaded server amplifies
    the overload, and a retry past the deadline cannot succeed. gRPC's retry throttling (a token
    bucket per channel) stops retries when most calls fail.
    """
    policy = {
        "maxAttempts": attempts,
        "initialBackoff": "0.05s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": "peakrec.v1.Recommender"}, {"service": "peakrec.v1.Admin"}],
                    "retryPolicy": policy,
                }
            ],
            "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
        }
    )


@dataclass(frozen=True)
class Item:
    item_id: str
    score: float
    reason: str = ""
    title: str = ""
    brand: str = ""
    price: float | None = None


@dataclass(frozen=True)
class Page:
    """One answered page: ``items`` in rank order, the bundle that answered, and whether the server
    had to degrade (deadline short) to answer in time."""

    items: list[Item]
    bundle_version: str
    degraded: bool = False
    cold: bool = False
    eligible_count: int = 0
    item_ids: list[str] = field(default_factory=list)


def _shopper_msg(s: Shopper) -> pb.Shopper:
    return pb.Shopper(
        user_id=s.user_id,
        region=s.region,
        context=dict(s.context),
        recent_items=list(s.recent_items),
        exclude_items=list(s.exclude_items),
        member_brands=list(s.member_brands),
        vector=list(s.vector or ()),
    )


def _filters_msg(f: Filters) -> pb.Filters:
    msg = pb.Filters(
        brands_allow=list(f.brands_allow),
        brands_block=list(f.brands_block),
        categories_allow=list(f.categories_allow),
        categories_block=list(f.categories_block),
    )
    if f.price_min is not None:
        msg.price_min = f.price_min
    if f.price_max is not None:
        msg.price_max = f.price_max
    return msg


def _page_of(reply: pb.RecommendResponse) -> Page:
    n = len(reply.item_ids)
    reasons = list(reply.reasons) or [""] * n
    titles = list(reply.titles) or [""] * n
    brands = list(reply.brands) or [""] * n
    prices: list[float | None] = list(reply.prices) or [None] * n
    items = [
        Item(item_id=i, score=s, reason=r, title=t, brand=b, price=p)
        for i, s, r, t, b, p in zip(
            reply.item_ids, reply.scores, reasons, titles, brands, prices, strict=True
        )
    ]
    return Page(
        items=items,
        bundle_version=reply.bundle_version,
        degraded=reply.degraded,
        cold=reply.cold,
        eligible_count=reply.eligible_count,
        item_ids=list(reply.item_ids),
    )


def _raise_typed(err: grpc.RpcError) -> None:
    """INVALID_ARGUMENT and NOT_FOUND become peakrec's own errors; other failures stay grpc.RpcError.

    An InvalidInputError carries ``field_violations``: (field, description) pairs from the status's
    google.rpc.BadRequest detail, when the server sent one."""
    code = err.code() if hasattr(err, "code") else None
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        from peakrec.service.errors_detail import field_violations

        typed = InvalidInputError(err.details())
        typed.field_violations = field_violations(err)
        raise typed from err
    if code == grpc.StatusCode.NOT_FOUND:
        raise NotFoundError(err.details()) from err
    raise err


class Client:
    """Talks to `peakrec serve`. ``timeout`` (seconds) is the default deadline of every call: the
    server turns it into its time budget and answers ``degraded`` rather than late.

    Calls that fail with UNAVAILABLE are retried up to ``retries`` times in all (1: never) within
    their deadline (:func:`retry_service_config`); a ``grpc.service_config`` in ``options`` replaces
    that policy. ``tls=True`` connects with TLS, trusting ``root_certificates`` (PEM bytes) or else
    the system's CA certificates.

    ``throttle_k``: while the server refuses calls (RESOURCE_EXHAUSTED), the client refuses part of
    its own storefront, search and similar-item calls locally (adaptive throttling, see
    ``peakrec.service.throttle``), raising a ``grpc.RpcError`` with that same code; ``None`` turns
    it off.

    >>> with Client("127.0.0.1:50051") as client:
    ...     page = client.storefront(Shopper(user_id="u42", region="CN-ZJ"), page_size=10)
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        admin_target: str | None = None,
        admin_token: str | None = None,
        timeout: float | None = 1.0,
        options: Sequence[tuple[str, Any]] = (),
        retries: int = 4,
        tls: bool = False,
        root_certificates: bytes | None = None,
        throttle_k: float | None = 2.0,
    ):
        if retries < 1:
            raise InvalidInputError(f"retries {retries}: must be at least 1 (1 = no retry)")
        self.timeout = timeout
        self._throttle = AdaptiveThrottle(throttle_k) if throttle_k is not None else None
        opts = list(options)
        if retries == 1:
            opts.append(("grpc.enable_retries", 0))
        elif not any(name == "grpc.service_config" for name, _ in opts):
            opts += [("grpc.service_config", retry_service_config(retries)), ("grpc.enable_retries", 1)]
        credentials = grpc.ssl_channel_credentials(root_certificates) if tls or root_certificates else None

        def channel(address: str) -> grpc.Channel:
            if credentials is None:
                return grpc.insecure_channel(address, options=opts)
            return grpc.secure_channel(address, credentials, options=opts)

        self._channel = channel(target)
        self._stub = pb_grpc.RecommenderStub(self._channel)
        self._admin_channel = channel(admin_target) if admin_target else None
        self._admin = pb_grpc.AdminStub(self._admin_channel) if self._admin_channel else None
        self._metadata = (("authorization", f"Bearer {admin_token}"),) if admin_token else None

    # -- storefront calls ----------------------------------------------------------------------------
    def _page_msg(
        self, page_size: int, page: int, explain: bool, details: bool, now: float | None
    ) -> pb.PageRequest:
        return pb.PageRequest(
            page_size=page_size, page=page, explain=explain, with_details=details, now=now or 0.0
        )

    def _call(self, method: Any, request: Any, timeout: float | None) -> Page:
        throttle = self._throttle
        if throttle is not None:
            throttle.admit()
        try:
            reply = method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as err:
            if throttle is not None and err.code() not in SHED:
                throttle.accepted()
            _raise_typed(err)
        if throttle is not None:
            throttle.accepted()
        return _page_of(reply)

    def storefront(
        self,
        shopper: Shopper | None = None,
        *,
        filters: Filters | None = None,
        page_size: int = 20,
        page: int = 0,
        explain: bool = False,
        details: bool = False,
        now: float | None = None,
        timeout: float | None = None,
    ) -> Page:
        """The shopper's storefront page (``details`` adds title, brand and live price per item)."""
        request = pb.StorefrontRequest(
            shopper=_shopper_msg(shopper or Shopper()),
            filters=_filters_msg(filters or Filters()),
            page=self._page_msg(page_size, page, explain, details, now),
        )
        return self._call(self._stub.Storefront, request, timeout)

    def search(
        self,
        query: str,
        shopper: Shopper | None = None,
        *,
        filters: Filters | None = None,
        page_size: int = 20,
        page: int = 0,
        explain: bool = False,
        details: bool = False,
        now: float | None = None,
        timeout: float | None = None,
    ) -> Page:
        request = pb.SearchRequest(
            query=query,
            shopper=_shopper_msg(shopper or Shopper()),
            filters=_filters_msg(filters or Filters()),
            page=self._page_msg(page_size, page, explain, details, now),
        )
        return self._call(self._stub.Search, request, timeout)

    def similar_items(
        self,
        item_id: str,
        shopper: Shopper | None = None,
        *,
        filters: Filters | None = None,
        page_size: int = 20,
        page: int = 0,
        explain: bool = False,
        details: bool = False,
        now: float | None = None,
        timeout: float | None = None,
    ) -> Page:
        request = pb.SimilarItemsRequest(
            item_id=item_id,
            shopper=_shopper_msg(shopper or Shopper()),
            filters=_filters_msg(filters or Filters()),
            page=self._page_msg(page_size, page, explain, details, now),
        )
        return self._call(self._stub.SimilarItems, request, timeout)

    # -- admin calls -----------------------------------------------------------------------------------
    def _admin_stub(self) -> pb_grpc.AdminStub:
        if self._admin is None:
            raise InvalidInputError("admin_target: this client was made without one")
        return self._admin

    def update_items(self, updates: Sequence[ItemUpdate], timeout: float | None = 10.0) -> int:
        """Applies stock/price/availability changes; returns the journal sequence number. Durable and
        visible to every worker when this returns."""
        msgs = []
        for u in updates:
            msg = pb.ItemUpdate(item_id=u.item_id)
            if u.stock is not None:
                msg.stock = u.stock
            if u.price is not None:
                msg.price = u.price
            if u.available is not None:
                msg.available = u.available
            msgs.append(msg)
        try:
            reply = self._admin_stub().UpdateItems(
                pb.UpdateItemsRequest(updates=msgs), timeout=timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            _raise_typed(err)
        return int(reply.journal_seq)

    def reload_index(self, version: str = "", wait_seconds: float = 60.0) -> str:
        """Makes every worker serve ``version`` (default: what CURRENT names); returns the version."""
        try:
            reply = self._admin_stub().ReloadIndex(
                pb.ReloadIndexRequest(version=version, wait_seconds=wait_seconds),
                timeout=wait_seconds + 30,
                metadata=self._metadata,
            )
        except grpc.RpcError as err:
            _raise_typed(err)
        return reply.bundle_version

    def index_info(self, timeout: float | None = 5.0) -> dict[str, Any]:
        try:
            reply = self._admin_stub().IndexInfo(
                pb.IndexInfoRequest(), timeout=timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            _raise_typed(err)
        workers = [
            {"index": w.index, "pid": w.pid, "bundle_version": w.bundle_version, "last_error": w.last_error}
            for w in reply.workers
        ]
        return {
            "bundle_version": reply.bundle_version,
            "manifest": json.loads(reply.manifest_json or "{}"),
            "items": reply.items,
            "users": reply.users,
            "answered_by": reply.answered_by.pid,
            "workers": workers,
            "journal_seq": reply.journal_seq,
        }

    def close(self) -> None:
        self._channel.close()
        if self._admin_channel is not None:
            self._admin_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
