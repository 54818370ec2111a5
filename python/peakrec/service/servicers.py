"""gRPC servicers: translate peakrec.v1 messages to the request path's dataclasses and back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np

from peakrec.errors import InvalidInputError
from peakrec.pipeline import types as t
from peakrec.pipeline.validate import check_page, check_query, price_range
from peakrec.retrieval.text import MAX_QUERY_CHARS
from peakrec.service import metrics, observability
from peakrec.service.statefile import ItemUpdate
from peakrec.service.worker import Worker, read_current, write_current
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc

DEFAULT_PAGE_SIZE = 20
# Every string and repeated field of a request is bounded (docs/serving.md lists the limits), so a
# malformed or hostile request costs a length check, not a scan, an allocation or a huge error message.
MAX_ID = 128  # characters of a user, item or brand id, a region code, a bundle version
MAX_TEXT = 1000  # characters of a category path, a context key or value
MAX_IDS = 1000  # recent / excluded items, brands and categories per list
MAX_CONTEXT = 64  # context features per shopper
MAX_VECTOR = 4096  # floats of a caller-given query vector

MAX_UPDATES = 100_000
SHOWN = 40  # characters of a bad value quoted in an error message


def shown(value: str) -> str:
    """A value for an error message: quoted, and cut short when long."""
    if len(value) <= SHOWN:
        return repr(value)
    return f"{value[:SHOWN]!r}… ({len(value):,} characters)"


def _text(value: str, field: str, limit: int = MAX_ID) -> str:
    if len(value) > limit:
        raise InvalidInputError(f"{field}: {shown(value)} is longer than {limit} characters")
    return value


def _texts(values: Any, field: str, limit: int = MAX_ID, count: int = MAX_IDS) -> tuple[str, ...]:
    if not values:
        return ()
    if len(values) > count:
        raise InvalidInputError(f"{field}: {len(values):,} entries, at most {count}")
    for i, value in enumerate(values):
        if len(value) > limit:
            raise InvalidInputError(f"{field}[{i}]: {shown(value)} is longer than {limit} characters")
    return tuple(values)


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The call's deadline as a time.monotonic() budget, leaving room to serialise the reply."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 1e6:
        return None
    return time.monotonic() + remaining - max(0.002, 0.1 * remaining)


def _context(msg: Any) -> dict[str, str]:
    if not msg:
        return {}
    if len(msg) > MAX_CONTEXT:
        raise InvalidInputError(f"shopper.context: {len(msg)} entries, at most {MAX_CONTEXT}")
    for key, value in msg.items():
        _text(key, "shopper.context key", MAX_TEXT)
        _text(value, f"shopper.context[{shown(key)}]", MAX_TEXT)
    return dict(msg)


def shopper_of(msg: pb.Shopper) -> t.Shopper:
    if len(msg.vector) > MAX_VECTOR:
        raise InvalidInputError(f"shopper.vector: {len(msg.vector):,} floats, at most {MAX_VECTOR}")
    return t.Shopper(
        user_id=_text(msg.user_id, "shopper.user_id"),
        region=_text(msg.region, "shopper.region"),
        context=_context(msg.context),
        recent_items=_texts(msg.recent_items, "shopper.recent_items"),
        exclude_items=_texts(msg.exclude_items, "shopper.exclude_items"),
        member_brands=_texts(msg.member_brands, "shopper.member_brands"),
        vector=tuple(msg.vector) if len(msg.vector) else None,
    )


NO_FILTERS = t.Filters()


def filters_of(msg: pb.Filters) -> t.Filters:
    if not msg.ListFields():
        return NO_FILTERS
    price_min = msg.price_min if msg.HasField("price_min") else None
    price_max = msg.price_max if msg.HasField("price_max") else None
    filters = t.Filters(
        brands_allow=_texts(msg.brands_allow, "filters.brands_allow"),
        brands_block=_texts(msg.brands_block, "filters.brands_block"),
        categories_allow=_texts(msg.categories_allow, "filters.categories_allow", MAX_TEXT),
        categories_block=_texts(msg.categories_block, "filters.categories_block", MAX_TEXT),
        price_min=price_min,
        price_max=price_max,
    )
    price_range(filters)  # (checks live in peakrec.pipeline.validate)
    return filters


def page_of(msg: pb.PageRequest, context: grpc.ServicerContext) -> t.Page:
    page = t.Page(
        page_size=msg.page_size or DEFAULT_PAGE_SIZE,
        page=msg.page,
        explain=msg.explain,
        now=msg.now or None,
        deadline=deadline_of(context),
    )
    check_page(page)  # (checks live in peakrec.pipeline.validate)
    return page


def response_of(rec: t.Recommendation, live: Any, details: bool) -> pb.RecommendResponse:
    scores = rec.scores.tolist() if isinstance(rec.scores, np.ndarray) else list(rec.scores)
    reply = pb.RecommendResponse(
        item_ids=rec.item_ids,
        scores=scores,
        bundle_version=rec.bundle_version,
        degraded=rec.degraded,
        cold=rec.cold,
        eligible_count=int(rec.eligible_count),
    )
    if rec.reasons is not None:
        reply.reasons.extend(rec.reasons)
    if details and len(rec.rows):
        rows = np.asarray(rec.rows, dtype=np.int64)
        items = live.bundle.items
        brands = live.bundle.vocab.get("brands", [])
        reply.titles.extend(np.asarray(items.titles)[rows].tolist())
        reply.brands.extend(brands[b] if 0 <= b < len(brands) else "" for b in items.brand[rows].tolist())
        reply.prices.extend(live.items.state.price[rows].tolist())
    return reply


# The stage histogram's labelled children, kept: ``labels()`` takes a lock and builds a key on
# every call, three times a request (the children themselves are what it would return).
_STAGE_CHILDREN: dict[tuple[str, str], Any] = {}


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """The public RPCs: each converts its message into a ``peakrec.pipeline.types`` request and
    calls the live bundle's request path (``RequestPath``) with it."""

    def __init__(self, worker: Worker):
        self.worker = worker

    def _answer(
        self,
        method: str,
        serve: Callable[[t.RequestPath, t.Page], t.Recommendation],
        page_msg: pb.PageRequest,
        context: grpc.ServicerContext,
    ) -> pb.RecommendResponse:
        live = self.worker.current()
        rec = serve(live.recommender, page_of(page_msg, context))
        for stage, seconds in rec.stage_seconds.items():
            child = _STAGE_CHILDREN.get((method, stage))
            if child is None:
                child = _STAGE_CHILDREN[(method, stage)] = metrics.STAGE.labels(method, stage)
            child.observe(seconds)
        observability.record_stages(rec.stage_seconds)
        if rec.degraded:
            metrics.DEGRADED.labels(method).inc()
        return response_of(rec, live, page_msg.with_details)

    def Storefront(self, request: pb.StorefrontRequest, context: grpc.ServicerContext) -> Any:
        def serve(path: t.RequestPath, page: t.Page) -> t.Recommendation:
            return path.storefront(
                t.StorefrontRequest(
                    shopper=shopper_of(request.shopper), filters=filters_of(request.filters), page=page
                )
            )

        return self._answer("storefront", serve, request.page, context)

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> Any:
        def serve(path: t.RequestPath, page: t.Page) -> t.Recommendation:
            query = check_query(_text(request.query, "query", MAX_QUERY_CHARS))
            return path.search(
                t.SearchRequest(
                    query=query,
                    shopper=shopper_of(request.shopper),
                    filters=filters_of(request.filters),
                    page=page,
                )
            )

        return self._answer("search", serve, request.page, context)

    def SimilarItems(self, request: pb.SimilarItemsRequest, context: grpc.ServicerContext) -> Any:
        def serve(path: t.RequestPath, page: t.Page) -> t.Recommendation:
            if not request.item_id:
                raise InvalidInputError("item_id: empty")
            return path.similar_items(
                t.SimilarItemsRequest(
                    item_id=_text(request.item_id, "item_id"),
                    shopper=shopper_of(request.shopper),
                    filters=filters_of(request.filters),
                    page=page,
                )
            )

        return self._answer("similar_items", serve, request.page, context)


def _worker_info(status: dict[str, Any]) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        index=int(status.get("index", 0)),
        pid=int(status.get("pid", 0)),
        bundle_version=status.get("bundle_version", ""),
        last_error=status.get("last_error", ""),
    )


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, worker: Worker):
        self.worker = worker

    def UpdateItems(self, request: pb.UpdateItemsRequest, context: grpc.ServicerContext) -> Any:
        if len(request.updates) > MAX_UPDATES:
            raise InvalidInputError(f"updates: {len(request.updates)} in one call, at most {MAX_UPDATES}")
        for i, u in enumerate(request.updates):
            _text(u.item_id, f"updates[{i}].item_id")
        updates = [
            ItemUpdate(
                item_id=u.item_id,
                stock=u.stock if u.HasField("stock") else None,
                price=u.price if u.HasField("price") else None,
                available=u.available if u.HasField("available") else None,
            )
            for u in request.updates
        ]
        live = self.worker.current()
        seq = live.items.apply(updates)
        metrics.ITEM_UPDATES.inc(len(updates))
        return pb.UpdateItemsResponse(applied=len(updates), journal_seq=seq)

    def ReloadIndex(self, request: pb.ReloadIndexRequest, context: grpc.ServicerContext) -> Any:
        worker = self.worker
        version = _text(request.version, "version") or read_current(worker.bundles_dir)
        if not 0 <= request.wait_seconds <= 3600:  # also refuses NaN
            raise InvalidInputError(f"wait_seconds: {request.wait_seconds!r} is not between 0 and 3600")
        wait = request.wait_seconds or 60.0
        live = worker.swap_to(version)  # verifies here first: a bad bundle never reaches CURRENT
        write_current(worker.bundles_dir, live.bundle.path.name)
        statuses = worker.wait_all_on(live.version, wait)
        return pb.ReloadIndexResponse(
            bundle_version=live.version, workers=[_worker_info(s) for s in statuses]
        )

    def IndexInfo(self, request: pb.IndexInfoRequest, context: grpc.ServicerContext) -> Any:
        worker = self.worker
        live = worker.current()
        manifest = getattr(live.bundle, "manifest", {}) or {}
        counts = manifest.get("counts", {})
        me = {
            "index": worker.index,
            "pid": os.getpid(),
            "bundle_version": live.version,
            "last_error": worker.last_error,
        }
        return pb.IndexInfoResponse(
            bundle_version=live.version,
            manifest_json=json.dumps(manifest, ensure_ascii=False),
            items=int(counts.get("items", len(live.items.state.stock))),
            users=int(counts.get("users", 0)),
            answered_by=_worker_info(me),
            workers=[_worker_info(s) for s in worker.statuses()],
            journal_seq=live.items.journal_seq,
        )
