"""``peakrec build``, ``peakrec inspect`` and ``peakrec prune``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from peakrec.bundle.build import build_bundle
from peakrec.bundle.manifest import read_manifest, resolve
from peakrec.bundle.verify import find_problems
from peakrec.cli import number, progress_wanted
from peakrec.errors import BundleError


def register(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser(
        "build",
        help="build a versioned bundle from a catalogue",
        description="Reads items and users (JSONL or Parquet), builds the FAISS index, cold-start table "
        "and fallbacks, publishes BUNDLES_DIR/<version> atomically and points BUNDLES_DIR/CURRENT at it.",
    )
    b.add_argument("--items", required=True, help="items .jsonl or .parquet")
    b.add_argument("--users", required=True, help="users .jsonl or .parquet")
    b.add_argument("--item-vectors", help=".npy float [items, d], row-aligned (else the embedding field)")
    b.add_argument("--user-vectors", help=".npy float [users, d], row-aligned; all-zero row = cold user")
    b.add_argument("--config", help="build.toml: [ranking], [retrieval], [[campaigns]], [coldstart], ...")
    b.add_argument("--index-factory", help='FAISS factory string, e.g. "HNSW32,Flat" or "IVF4096,SQ8"')
    b.add_argument(
        "--min-recall", type=number(float, 0, 1), help="fail the build if recall@100 is below this (0-1)"
    )
    b.add_argument(
        "--quiet", action="store_true", help="no progress bars (also off when stderr is not a terminal)"
    )
    b.add_argument("--out", required=True, help="BUNDLES_DIR")
    b.set_defaults(run=run_build)

    i = subparsers.add_parser(
        "inspect",
        help="print a bundle's manifest and verify every checksum",
        description="Prints the manifest of BUNDLE (a bundle directory, or a BUNDLES_DIR: its CURRENT) "
        'as JSON on stdout, with a "verification" object, after verifying every file\'s sha256; exits 1 '
        "on any mismatch. Progress and messages go to stderr.",
    )
    i.add_argument("bundle", help="bundle directory or BUNDLES_DIR")
    i.add_argument("--files", action="store_true", help="also print the per-file checksums")
    i.add_argument(
        "--quiet", action="store_true", help="no progress bar (also off when stderr is not a terminal)"
    )
    i.set_defaults(run=run_inspect)

    p = subparsers.add_parser(
        "prune",
        help="delete old bundle versions, keeping the newest N",
        description="Deletes all but the --keep newest bundles (by the manifest's created_at) of "
        "BUNDLES_DIR. "
        "Never deletes the bundle CURRENT names, nor one a running server's worker reports serving "
        "(STATE_DIR/workers/*.json).",
    )
    p.add_argument("bundles", type=Path, help="BUNDLES_DIR")
    p.add_argument(
        "--keep", type=number(int, 1), required=True, help="how many of the newest bundles to keep"
    )
    p.add_argument(
        "--state-dir", type=Path, help="the server's state directory (default: BUNDLES_DIR/.state)"
    )
    p.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    p.set_defaults(run=run_prune)


def run_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    path = build_bundle(
        args.items,
        args.users,
        args.out,
        item_vectors=args.item_vectors,
        user_vectors=args.user_vectors,
        config=args.config,
        index_factory=args.index_factory,
        min_recall=args.min_recall,
        progress=progress_wanted(args),
    )
    m = read_manifest(path)
    c, r = m["counts"], m["recall"]
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    cold = m["coldstart"]
    print(f"built {path}")
    print(
        f"  items {c['items']:,}  users {c['users']:,} ({c['users_with_vector']:,} with vectors)  "
        f"dim {m['dimension']}  regions {c['regions']}  brands {c['brands']}  categories {c['categories']}"
    )
    print(
        f"  index {m['index']['factory']} {m['index']['search_params']}  "
        f"recall@{r['k']} {r['recall_at_k']:.4f} on {r['queries']} {r['query_source']} queries"
    )
    if "heldout_cosine" in cold:
        print(
            f"  cold start: {cold['active_buckets']} buckets, held-out cosine {cold['heldout_cosine']:.3f} "
            f"(mean vector {cold['mean_vector_cosine']:.3f})"
        )
    print(f"  size {size / 2**20:.1f} MiB  time {time.monotonic() - started:.1f}s  CURRENT -> {path.name}")
    if c["users"] and not c["users_with_vector"]:
        print(
            f"peakrec build: warning: none of the {c['users']:,} users has a vector (no --user-vectors, "
            "no embedding field, or all-zero rows): every shopper is served as cold, from context "
            "features only",
            file=sys.stderr,
        )
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    path = resolve(Path(args.bundle))
    if not path.is_dir():
        raise BundleError(f"bundle {path}: no such directory")
    problems = find_problems(path, progress=progress_wanted(args))
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError):
        manifest = None
    shown: dict = {}
    if manifest is not None:
        shown = dict(manifest) if args.files else {k: v for k, v in manifest.items() if k != "files"}
        if not args.files and "files" in manifest:
            shown["files"] = f"{len(manifest['files'])} files (--files to list)"
    files = len(manifest["files"]) if manifest and "files" in manifest else 0
    shown["verification"] = {"ok": not problems, "files": files, "problems": problems}
    print(json.dumps(shown, ensure_ascii=False, indent=1))  # stdout carries JSON only
    if problems:
        for problem in problems:
            print(f"FAILED {problem}", file=sys.stderr)
        raise BundleError(f"bundle {path}: {len(problems)} problem(s), first: {problems[0]}")
    print(f"OK: {files} files verified", file=sys.stderr)
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from peakrec.bundle.prune import prune

    if not args.bundles.is_dir():
        raise BundleError(f"{args.bundles}: no such directory")
    result = prune(args.bundles, args.keep, state_dir=args.state_dir, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for name in result.removed:
        print(f"{verb} {name}")
    for name, why in result.protected.items():
        print(f"kept {name} ({why})")
    print(f"prune: {len(result.kept)} kept, {len(result.removed)} {verb}")
    return 0
