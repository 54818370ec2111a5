"""``peakrec eval storefront BUNDLE --heldout FILE`` and ``peakrec eval search BUNDLE --queries FILE``."""

from __future__ import annotations

import argparse
import datetime as dt
import json

import faiss

from peakrec.cli import number, progress_wanted
from peakrec.errors import InvalidInputError
from peakrec.evaluation.storefront import evaluate_storefront, read_heldout
from peakrec.pipeline.validate import MAX_PAGE_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="offline evaluation of served pages")
    kinds = p.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    s = kinds.add_parser(
        "storefront",
        help="recall@k and NDCG@k of storefront pages on held-out purchases",
        description="Serves every held-out user's first storefront page and scores it against the user's "
        "next purchases, beside the region-popular list (baseline); cold users are reported apart.",
    )
    s.add_argument("bundle", help="bundle directory or BUNDLES_DIR")
    s.add_argument("--heldout", required=True, help="heldout.jsonl: {user_id, next_purchases} per line")
    s.add_argument("-k", type=number(int, 1, MAX_PAGE_SIZE), default=20, help="page size and cut-off")
    s.add_argument("--limit", type=number(int, 1), help="evaluate only the first N users")
    s.add_argument(
        "--ranking",
        metavar="JSON",
        help="override ranking weights of the bundle config, e.g. '{\"candidates_factor\": 10}'",
    )
    s.add_argument("--now", type=_time, help=NOW_HELP)
    s.add_argument("--json", action="store_true", help="print the figures as JSON")
    s.add_argument(
        "--quiet", action="store_true", help="no progress bar (also off when stderr is not a terminal)"
    )
    s.set_defaults(run=run_storefront)
    q = kinds.add_parser(
        "search",
        help="MRR@k and NDCG@k of search pages on queries with known targets",
        description="Serves every query for a seeded random shopper in each mode (BM25 only, vector only, "
        "fused, fused + personalised) and scores the page against the query's target items.",
    )
    q.add_argument("bundle", help="bundle directory or BUNDLES_DIR")
    q.add_argument("--queries", required=True, help="queries.jsonl: {query, targets} per line")
    q.add_argument("-k", type=number(int, 1, MAX_PAGE_SIZE), default=10, help="page size and cut-off")
    q.add_argument("--limit", type=number(int, 1), help="evaluate only the first N queries")
    q.add_argument("--now", type=_time, help=NOW_HELP)
    q.add_argument("--json", action="store_true", help="print the figures as JSON")
    q.add_argument(
        "--quiet", action="store_true", help="no progress bar (also off when stderr is not a terminal)"
    )
    q.set_defaults(run=run_search)


NOW_HELP = (
    "serve the pages as at this time (ISO 8601, e.g. 2026-11-11T00:00:00+08:00, or unix seconds): "
    "campaigns, new items and presale windows as then; default the wall clock"
)


def _time(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or unix seconds: {value!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def run_storefront(args: argparse.Namespace) -> int:
    from peakrec.bundle import load_bundle
    from peakrec.pipeline.recommender import Recommender

    faiss.omp_set_num_threads(1)  # as a serving worker runs
    bundle = load_bundle(args.bundle)
    if args.ranking:
        try:
            overrides = json.loads(args.ranking)
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"--ranking: not JSON ({err})") from None
        bundle.config = {**bundle.config, "ranking": {**bundle.config.get("ranking", {}), **overrides}}
    recommender = Recommender(bundle)
    heldout = read_heldout(args.heldout)[: args.limit]
    result = evaluate_storefront(recommender, heldout, k=args.k, progress=progress_wanted(args), now=args.now)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    k = args.k
    print(f"storefront eval on {recommender.version}: k={k}, {summary['all']['users']} users "
          f"({result.skipped} skipped: unknown or no purchases)")  # fmt: skip
    print(f"{'group':<6} {'users':>6} {f'recall@{k}':>10} {f'ndcg@{k}':>9} {'popular r':>10} "
          f"{'popular n':>10} {'lift r':>7} {'lift n':>7}")  # fmt: skip
    for group in ("all", "warm", "cold"):
        g = summary[group]
        print(f"{group:<6} {g['users']:>6} {g['recall']:>10.4f} {g['ndcg']:>9.4f} "
              f"{g['baseline_recall']:>10.4f} {g['baseline_ndcg']:>10.4f} "
              f"{g['recall_lift']:>7.2f} {g['ndcg_lift']:>7.2f}")  # fmt: skip
    return 0


def run_search(args: argparse.Namespace) -> int:
    from peakrec.bundle import load_bundle
    from peakrec.evaluation.search import evaluate_search, read_queries
    from peakrec.pipeline.recommender import Recommender

    faiss.omp_set_num_threads(1)
    recommender = Recommender(load_bundle(args.bundle))
    queries = read_queries(args.queries)[: args.limit]
    summary = evaluate_search(
        recommender, queries, k=args.k, progress=progress_wanted(args), now=args.now
    ).summary()
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    k = args.k
    print(f"search eval on {recommender.version}: k={k}, {summary['queries']} queries "
          f"({summary['skipped']} skipped: no target in the bundle)")  # fmt: skip
    print(f"{'mode':<13} {f'mrr@{k}':>8} {f'ndcg@{k}':>8} {'degraded':>9}")
    for mode, m in summary["modes"].items():
        print(f"{mode:<13} {m[f'mrr@{k}']:>8.4f} {m[f'ndcg@{k}']:>8.4f} {m['degraded']:>9}")
    return 0
