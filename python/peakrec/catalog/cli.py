"""``peakrec demo-data``: writes the deterministic demo catalogue."""

from __future__ import annotations

import argparse
import time

from peakrec.catalog.demo_data import DemoSpec, generate
from peakrec.cli import number, progress_wanted
from peakrec.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo-data",
        help="write a deterministic Double-11 demo catalogue",
        description="Writes items, users, their embeddings (.npy), held-out purchases, search queries "
        "and build.toml into --out. The same --seed always gives the same bytes.",
    )
    p.add_argument("--items", type=number(int, 100), default=200_000, help="number of items")
    p.add_argument("--users", type=number(int, 10), default=50_000, help="number of users")
    p.add_argument("--dim", type=number(int, 8, 4096), default=64, help="embedding dimension")
    p.add_argument("--seed", type=number(int, 0), default=11, help="random seed")
    p.add_argument(
        "--cold-share", type=number(float, 0, 1), default=0.1, help="share of users without embeddings"
    )
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="record format")
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar (also off when stderr is not a terminal)"
    )
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    spec = DemoSpec(
        items=args.items, users=args.users, dim=args.dim, seed=args.seed, cold_share=args.cold_share
    )
    try:
        counts = generate(args.out, spec, fmt=args.format, progress=progress_wanted(args))
    except ValueError as err:
        raise InvalidInputError(str(err)) from None
    print(
        f"demo-data: {counts['items']} items, {counts['users']} users ({counts['cold_users']} cold), "
        f"{counts['queries']} queries, dim {counts['dim']} -> {counts['out']} "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0
