"""`peakrec serve` and `peakrec query storefront|search|similar|update|info`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from peakrec.errors import InvalidInputError


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="serve bundles over gRPC (supervisor + N workers)")
    serve.add_argument("--bundles", type=Path, required=True, help="bundles directory (with CURRENT)")
    serve.add_argument("--state-dir", type=Path, help="live item state and journal (default BUNDLES/.state)")
    serve.add_argument("--host", default="0.0.0.0", help="public bind address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=50051)
    serve.add_argument("--admin-host", default="127.0.0.1", help="admin bind address (default 127.0.0.1)")
    serve.add_argument("--admin-port", type=int, default=50052)
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("PEAKREC_ADMIN_TOKEN"),
        help="bearer token for admin RPCs; required for a non-local --admin-host (env PEAKREC_ADMIN_TOKEN)",
    )
    serve.add_argument("--metrics-host", default="127.0.0.1")
    serve.add_argument(
        "--metrics-port", type=int, default=None, help="Prometheus endpoint port (default off)"
    )
    serve.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)"
    )
    serve.add_argument(
        "--max-inflight", type=int, default=2, help="requests run at once per worker (default: 2)"
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="most requests queued per worker beyond those running; more are refused (default: 64)",
    )
    serve.add_argument(
        "--queue-ms",
        type=float,
        default=20.0,
        help="the queue holds about this much work, from the measured time per request; "
        "more is refused (default: 20)",
    )
    serve.add_argument("--grace", type=float, default=10.0, help="seconds to drain on SIGTERM")
    serve.add_argument(
        "--drain-delay",
        type=float,
        default=0.1,
        help="seconds a worker keeps taking calls in after SIGTERM before it refuses new ones (default: 0.1)",
    )
    serve.add_argument(
        "--max-connection-age",
        type=float,
        default=5.0,
        help="seconds before a client connection is asked to reconnect (GOAWAY), so load "
        "rebalances over restarted workers; 0: never (default: 5)",
    )
    serve.add_argument("--engine", default="peakrec", help=argparse.SUPPRESS)  # bench/test stand-ins
    serve.set_defaults(run=run_serve)

    query = subparsers.add_parser("query", help="ask a running server and print the page as a table")
    kinds = query.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, helptext in (
        ("storefront", "a shopper's storefront page"),
        ("search", "search results for a query"),
        ("similar", "items similar to one item"),
    ):
        p = kinds.add_parser(kind, help=helptext)
        if kind == "search":
            p.add_argument("query")
        if kind == "similar":
            p.add_argument("item_id")
        _shopper_args(p)
        p.set_defaults(run=run_query)
    update = kinds.add_parser("update", help="change an item's live stock, price or availability (admin)")
    update.add_argument("item_id")
    update.add_argument("--stock", type=int)
    update.add_argument("--price", type=float)
    update.add_argument("--available", choices=["yes", "no"])
    _target_args(update)
    update.set_defaults(run=run_update)
    info = kinds.add_parser("info", help="the served bundle and the workers (admin)")
    _target_args(info)
    info.set_defaults(run=run_info)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--admin-target", default="127.0.0.1:50052")
    p.add_argument("--admin-token", default=os.environ.get("PEAKREC_ADMIN_TOKEN"))
    p.add_argument("--timeout", type=float, default=2.0, help="deadline in seconds")


def _shopper_args(p: argparse.ArgumentParser) -> None:
    _target_args(p)
    p.add_argument("--user", default="", help="user id")
    p.add_argument("--region", default="")
    p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="context feature")
    p.add_argument("--recent", action="append", default=[], metavar="ITEM", help="recently viewed item")
    p.add_argument("--exclude", action="append", default=[], metavar="ITEM")
    p.add_argument("--member", action="append", default=[], metavar="BRAND", help="brand membership")
    p.add_argument("--brand", action="append", default=[], help="only these brands")
    p.add_argument("--category", action="append", default=[], help="only these category path prefixes")
    p.add_argument("--price-min", type=float)
    p.add_argument("--price-max", type=float)
    p.add_argument("--size", type=int, default=10, help="page size")
    p.add_argument("--page", type=int, default=0)
    p.add_argument("--no-explain", action="store_true")


def run_serve(args: argparse.Namespace) -> int:
    from peakrec.service.supervisor import SupervisorOptions, run

    return run(
        SupervisorOptions(
            bundles=args.bundles,
            state_dir=args.state_dir,
            host=args.host,
            port=args.port,
            admin_host=args.admin_host,
            admin_port=args.admin_port,
            admin_token=args.admin_token,
            metrics_host=args.metrics_host,
            metrics_port=args.metrics_port,
            workers=args.workers,
            max_inflight=args.max_inflight,
            max_queue=args.max_queue,
            queue_ms=args.queue_ms,
            grace_seconds=args.grace,
            drain_delay=args.drain_delay,
            max_connection_age=args.max_connection_age,
            engine=args.engine,
        )
    )


def _client(args: argparse.Namespace) -> Any:
    from peakrec.service.client import Client

    return Client(
        args.target, admin_target=args.admin_target, admin_token=args.admin_token, timeout=args.timeout
    )


def format_page(page: Any) -> str:
    """A readable table: rank, item, title, brand, price, score, reason."""
    rows = [("#", "item", "title", "brand", "price", "score", "reason")]
    for rank, item in enumerate(page.items, 1):
        price = "" if item.price is None else f"{item.price:.2f}"
        rows.append(
            (str(rank), item.item_id, item.title[:36], item.brand, price, f"{item.score:.4f}", item.reason)
        )
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(_pad(c, w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    flags = [f"bundle {page.bundle_version}", f"eligible {page.eligible_count}"]
    if page.cold:
        flags.append("cold shopper")
    if page.degraded:
        flags.append("DEGRADED")
    return "\n".join(lines + ["(" + ", ".join(flags) + ")"])


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(
        2
        if "\u1100" <= ch and (ch <= "\u115f" or "\u2e80" <= ch <= "\ufe4f" or "\uff00" <= ch <= "\uffef")
        else 1
        for ch in text
    )


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _reporting_rpc_errors(run: Any) -> Any:
    """A failed call prints its status code and message, not a traceback."""

    def wrapped(args: argparse.Namespace) -> int:
        import grpc

        try:
            return int(run(args))
        except grpc.RpcError as err:
            print(f"peakrec query: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1

    return wrapped


@_reporting_rpc_errors
def run_query(args: argparse.Namespace) -> int:
    from peakrec.pipeline.types import Filters, Shopper

    context = {}
    for kv in args.context:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--context {kv!r}: expected KEY=VALUE")
        context[key] = value
    shopper = Shopper(
        user_id=args.user,
        region=args.region,
        context=context,
        recent_items=tuple(args.recent),
        exclude_items=tuple(args.exclude),
        member_brands=tuple(args.member),
    )
    filters = Filters(
        brands_allow=tuple(args.brand),
        categories_allow=tuple(args.category),
        price_min=args.price_min,
        price_max=args.price_max,
    )
    common = dict(
        filters=filters, page_size=args.size, page=args.page, explain=not args.no_explain, details=True
    )
    with _client(args) as client:
        if args.kind == "storefront":
            page = client.storefront(shopper, **common)
        elif args.kind == "search":
            page = client.search(args.query, shopper, **common)
        else:
            page = client.similar_items(args.item_id, shopper, **common)
    print(format_page(page))
    return 0


@_reporting_rpc_errors
def run_update(args: argparse.Namespace) -> int:
    from peakrec.service.statefile import ItemUpdate

    available = None if args.available is None else args.available == "yes"
    with _client(args) as client:
        seq = client.update_items(
            [ItemUpdate(args.item_id, stock=args.stock, price=args.price, available=available)]
        )
    print(f"updated {args.item_id} (journal seq {seq})")
    return 0


@_reporting_rpc_errors
def run_info(args: argparse.Namespace) -> int:
    import json

    with _client(args) as client:
        info = client.index_info()
    json.dump({k: v for k, v in info.items() if k != "manifest"}, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0
