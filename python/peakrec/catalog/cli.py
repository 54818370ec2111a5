"""``peakrec demo-data``: writes the deterministic demo catalogue."""

from __future__ import annotations

import argparse
import time

from peakrec.catalog.demo_data import DemoSpec, generate
from peakrec.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo-data",
        help="write a deterministic Double-11 demo catalogue",
        description="Writes items, users, their embeddings (.npy), held-out purchases, search queries "
        "and build.toml into --out. The same --seed always gives the same bytes.",
    )
    p.add_argument("--items", type=int, default=200_000, help="number of items (default 200000)")
    p.add_argument("--users", type=int, default=50_000, help="number of users (default 50000)")
    p.add_argument("--dim", type=int, default=64, help="embedding dimension (default 64)")
    p.add_argument("--seed", type=int, default=11, help="random seed (default 11)")
    p.add_argument("--cold-share", type=float, default=0.1, help="share of users without embeddings")
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="record format")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    spec = DemoSpec(
        items=args.items, users=args.users, dim=args.dim, seed=args.seed, cold_share=args.cold_share
    )
    try:
        counts = generate(args.out, spec, fmt=args.format)
    except ValueError as err:
        raise InvalidInputError(str(err)) from None
    print(
        f"demo-data: {counts['items']} items, {counts['users']} users ({counts['cold_users']} cold), "
        f"{counts['queries']} queries, dim {counts['dim']} -> {counts['out']} "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0
