"""`peakrec serve` and `peakrec query storefront|search|similar|update|info`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from peakrec.cli import PORT, number, report_rpc_error
from peakrec.errors import InvalidInputError, PeakrecError, UsageError


def register(subparsers: Any) -> None:
    from peakrec.service.cpus import available_cpus
    from peakrec.service.logsetup import FORMATS, LEVELS

    serve = subparsers.add_parser(
        "serve",
        help="serve bundles over gRPC (supervisor + N workers)",
        description="Serves BUNDLES/CURRENT on the public port (Recommender) and the admin port (Admin), "
        "both with grpc.health.v1 and reflection; prints one 'ready' line once every worker serves and "
        "drains on SIGTERM.",
    )
    serve.add_argument("--bundles", type=Path, required=True, help="bundles directory (with CURRENT)")
    serve.add_argument("--state-dir", type=Path, help="live item state and journal (default: BUNDLES/.state)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="public bind address; 0.0.0.0 or :: to accept other machines (containers need it)",
    )
    serve.add_argument("--port", type=PORT, default=50051, help="public port (Recommender)")
    serve.add_argument(
        "--health-port",
        type=PORT,
        default=None,
        help="a plaintext port serving only grpc.health.v1, outside admission control, for probes: "
        "under overload the public port refuses health checks with the rest (default: off)",
    )
    serve.add_argument("--admin-host", default="127.0.0.1", help="admin bind address")
    serve.add_argument("--admin-port", type=PORT, default=50052, help="admin port (Admin)")
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("PEAKREC_ADMIN_TOKEN"),
        help="bearer token for admin RPCs; required for a non-local --admin-host "
        "(default: env PEAKREC_ADMIN_TOKEN)",
    )
    serve.add_argument("--metrics-host", default="127.0.0.1", help="Prometheus endpoint bind address")
    serve.add_argument(
        "--metrics-port", type=PORT, default=None, help="Prometheus endpoint port (default: off)"
    )
    serve.add_argument(
        "--workers",
        type=number(int, 1, 1024),
        default=available_cpus(),
        help="worker processes (default: the CPUs this process may use, by affinity and cgroup quota: "
        "%(default)s here)",
    )
    serve.add_argument(
        "--max-inflight", type=number(int, 1), default=2, help="requests run at once per worker"
    )
    serve.add_argument(
        "--max-queue",
        type=number(int, 0),
        default=64,
        help="most requests queued per worker beyond those running; more are refused",
    )
    serve.add_argument(
        "--queue-ms",
        type=number(float, 0),
        default=20.0,
        help="the queue holds about this much work, from the measured time per request; more is refused",
    )
    serve.add_argument("--grace", type=number(float, 0), default=10.0, help="seconds to drain on SIGTERM")
    serve.add_argument(
        "--drain-delay",
        type=number(float, 0),
        default=0.1,
        help="seconds a worker keeps taking calls in after SIGTERM before it refuses new ones",
    )
    serve.add_argument(
        "--max-connection-age",
        type=number(float, 0),
        default=5.0,
        help="seconds before a client connection is asked to reconnect (GOAWAY), so load rebalances "
        "over restarted workers; 0: never",
    )
    serve.add_argument(
        "--tls-cert", type=Path, help="PEM certificate chain: TLS on the public and admin ports"
    )
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--log-level", choices=LEVELS, type=str.upper, default="INFO", help="log threshold")
    serve.add_argument("--log-format", choices=FORMATS, default="text", help="json: one JSON object per line")
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per RPC: method, status, latency, bundle version, degraded "
        "(logger peakrec.access)",
    )
    serve.add_argument("--engine", default="peakrec", help=argparse.SUPPRESS)  # bench/test stand-ins
    serve.set_defaults(run=run_serve)

    query = subparsers.add_parser(
        "query",
        help="ask a running server and print the page as a table",
        description="Calls a running `peakrec serve`. Exit codes: 0 answered, 1 the server refused the "
        "request (status named on stderr), 69 unavailable (not reachable, overloaded or out of time).",
    )
    kinds = query.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, helptext in (
        ("storefront", "a shopper's storefront page"),
        ("search", "search results for a query"),
        ("similar", "items similar to one item"),
    ):
        p = kinds.add_parser(kind, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        if kind == "search":
            p.add_argument("query", help="search text (any language; CJK and Latin)")
        if kind == "similar":
            p.add_argument("item_id", help="the item to find neighbours of")
        _shopper_args(p)
        p.add_argument(
            "--html",
            type=Path,
            metavar="FILE",
            help="also write the page as a self-contained HTML file (titles, brands, prices, scores, "
            "reasons)",
        )
        p.set_defaults(run=run_query)
    update = kinds.add_parser(
        "update",
        help="change items' live stock, price or availability (admin)",
        description="Updates one item from the flags, or many from --from FILE.jsonl (one object per line: "
        '{"item_id": "A17", "stock": 0, "price": 9.9, "available": true}, fields other than item_id '
        "optional), applied as one batch: all or none.",
    )
    update.add_argument("item_id", nargs="?", help="the item to change (or use --from)")
    update.add_argument("--stock", type=number(int, 0, 2**31 - 1), help="units in stock")
    update.add_argument("--price", type=number(float, 0), help="live price")
    update.add_argument("--available", choices=["yes", "no"], help="whether the item may be shown")
    update.add_argument(
        "--from", dest="from_file", type=Path, metavar="FILE.jsonl", help="updates, one per line"
    )
    _target_args(update)
    update.set_defaults(run=run_update)
    reload = kinds.add_parser(
        "reload",
        help="make every worker serve a bundle version (admin)",
        description="Loads and verifies VERSION (default: what BUNDLES/CURRENT names) in every worker, "
        "then swaps; a bundle that fails verification is refused and the old one keeps serving.",
    )
    reload.add_argument("version", nargs="?", default="", help="bundle version (default: CURRENT)")
    reload.add_argument(
        "--wait", type=number(float, 0), default=60.0, help="seconds to wait for every worker to swap"
    )
    _target_args(reload)
    reload.set_defaults(run=run_reload)
    info = kinds.add_parser("info", help="the served bundle and the workers (admin), as JSON")
    _target_args(info)
    info.set_defaults(run=run_info)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="127.0.0.1:50051", help="public address HOST:PORT")
    p.add_argument("--admin-target", default="127.0.0.1:50052", help="admin address HOST:PORT")
    p.add_argument(
        "--admin-token",
        default=os.environ.get("PEAKREC_ADMIN_TOKEN"),
        help="bearer token for admin RPCs (default: env PEAKREC_ADMIN_TOKEN)",
    )
    p.add_argument("--timeout", type=number(float, 0.001), default=2.0, help="deadline in seconds")
    p.add_argument(
        "--tls", action="store_true", help="connect with TLS, trusting the system's CA certificates"
    )
    p.add_argument("--tls-ca", type=Path, help="connect with TLS, trusting this PEM CA certificate")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def _shopper_args(p: argparse.ArgumentParser) -> None:
    _target_args(p)
    p.add_argument("--user", default="", help="user id (unknown users are served as cold shoppers)")
    p.add_argument("--region", default="", help="region code, e.g. CN-ZJ or BR")
    p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="context feature")
    p.add_argument("--recent", action="append", default=[], metavar="ITEM", help="recently viewed item")
    p.add_argument("--exclude", action="append", default=[], metavar="ITEM", help="never show this item")
    p.add_argument("--member", action="append", default=[], metavar="BRAND", help="brand membership")
    p.add_argument("--brand", action="append", default=[], help="only these brands")
    p.add_argument("--category", action="append", default=[], help="only these category path prefixes")
    p.add_argument("--price-min", type=number(float, 0), help="lowest price shown")
    p.add_argument("--price-max", type=number(float, 0), help="highest price shown")
    p.add_argument("--size", type=number(int, 1), default=10, help="page size")
    p.add_argument("--page", type=number(int, 0), default=0, help="page number, from 0")
    p.add_argument("--no-explain", action="store_true", help="do not ask for the reason per item")


def run_serve(args: argparse.Namespace) -> int:
    from peakrec.service.server import check_admin_bind
    from peakrec.service.supervisor import SupervisorOptions, run

    try:
        check_admin_bind(args.admin_host, args.admin_token)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not os.access(path, os.R_OK):
            raise PeakrecError(f"{flag} {path}: not a readable file")
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
            health_port=args.health_port,
            engine=args.engine,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            log_level=args.log_level,
            log_format=args.log_format,
            access_log=args.access_log,
        )
    )


def _client(args: argparse.Namespace) -> Any:
    from peakrec.service.client import Client

    roots = None
    if args.tls_ca is not None:
        try:
            roots = args.tls_ca.read_bytes()
        except OSError as err:
            raise PeakrecError(f"--tls-ca {args.tls_ca}: {err.strerror}") from None
    return Client(
        args.target,
        admin_target=args.admin_target,
        admin_token=args.admin_token,
        timeout=args.timeout,
        tls=args.tls or roots is not None,
        root_certificates=roots,
    )


def page_json(page: Any) -> dict[str, Any]:
    """A page as plain JSON data (``peakrec query ... --json``)."""
    return {
        "bundle_version": page.bundle_version,
        "degraded": page.degraded,
        "cold": page.cold,
        "eligible_count": page.eligible_count,
        "items": [dataclasses.asdict(item) for item in page.items],
    }


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    print()


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
    """A failed call prints its status code and message, not a traceback; the exit code tells a
    refusal (1) from an unavailable server (69)."""

    def wrapped(args: argparse.Namespace) -> int:
        import grpc

        try:
            return int(run(args))
        except grpc.RpcError as err:
            return report_rpc_error(err)

    return wrapped


@_reporting_rpc_errors
def run_query(args: argparse.Namespace) -> int:
    from peakrec.pipeline.types import Filters, Shopper

    context = {}
    for kv in args.context:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise UsageError(f"--context {kv!r}: expected KEY=VALUE")
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
    if args.html is not None:
        from peakrec.service.pagehtml import page_html

        args.html.write_text(page_html(page, _heading(args)), encoding="utf-8")
    if args.json:
        _print_json(page_json(page))
    else:
        print(format_page(page))
    return 0


def _heading(args: argparse.Namespace) -> str:
    who = args.user or "an unknown shopper"
    if args.region:
        who += f" ({args.region})"
    if args.kind == "search":
        return f"Search “{args.query}” for {who}"
    if args.kind == "similar":
        return f"Similar to {args.item_id}, for {who}"
    return f"Storefront for {who}"


UPDATE_FIELDS = {"item_id": str, "stock": int, "price": (int, float), "available": bool}


def read_updates(path: Path) -> list[Any]:
    """ItemUpdates from a JSONL file; errors name the file, the line and the field."""
    from peakrec.service.statefile import ItemUpdate

    updates = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InvalidInputError(f"--from {path}: {err.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"{where}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("item_id"), str) or not row["item_id"]:
            raise InvalidInputError(f'{where}: expected an object with a string "item_id"')
        for key, value in row.items():
            kind = UPDATE_FIELDS.get(key)
            if kind is None:
                raise InvalidInputError(
                    f'{where}: unknown field "{key}" (expected {", ".join(UPDATE_FIELDS)})'
                )
            wrong_bool = isinstance(value, bool) and kind is not bool
            if value is not None and (wrong_bool or not isinstance(value, kind)):
                raise InvalidInputError(f'{where}: "{key}" is {json.dumps(value)}, not a {key} value')
        updates.append(
            ItemUpdate(
                row["item_id"], stock=row.get("stock"), price=row.get("price"), available=row.get("available")
            )
        )
    if not updates:
        raise InvalidInputError(f"--from {path}: no updates in the file")
    return updates


@_reporting_rpc_errors
def run_update(args: argparse.Namespace) -> int:
    from peakrec.service.statefile import ItemUpdate

    if args.from_file is not None:
        if args.item_id or args.stock is not None or args.price is not None or args.available is not None:
            raise UsageError(
                "--from FILE takes the updates from the file: "
                "give no ITEM_ID, --stock, --price or --available"
            )
        updates = read_updates(args.from_file)
    elif not args.item_id:
        raise UsageError("give ITEM_ID with --stock/--price/--available, or --from FILE.jsonl")
    else:
        if args.stock is None and args.price is None and args.available is None:
            raise UsageError(f"{args.item_id}: nothing to change (give --stock, --price or --available)")
        available = None if args.available is None else args.available == "yes"
        updates = [ItemUpdate(args.item_id, stock=args.stock, price=args.price, available=available)]
    with _client(args) as client:
        seq = client.update_items(updates)
    if args.json:
        _print_json({"updated": len(updates), "journal_seq": seq})
    elif len(updates) == 1:
        print(f"updated {updates[0].item_id} (journal seq {seq})")
    else:
        print(f"updated {len(updates)} items (journal seq {seq})")
    return 0


@_reporting_rpc_errors
def run_reload(args: argparse.Namespace) -> int:
    with _client(args) as client:
        version = client.reload_index(args.version, wait_seconds=args.wait)
    if args.json:
        _print_json({"bundle_version": version})
    else:
        print(f"serving {version}")
    return 0


@_reporting_rpc_errors
def run_info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.index_info()
    _print_json({k: v for k, v in info.items() if k != "manifest"})
    return 0
