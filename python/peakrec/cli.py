"""The `peakrec` command. Each subcommand lives beside the code it drives and registers here."""

from __future__ import annotations

import argparse
import importlib
import sys

from peakrec.errors import PeakrecError

# Modules that define `register(subparsers)`; each adds its subcommands with `set_defaults(run=...)`.
COMMAND_MODULES: list[str] = [
    "peakrec.catalog.cli",
    "peakrec.bundle.cli",
    "peakrec.evaluation.cli",
    "peakrec.service.cli",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peakrec", description="Recommendation serving core.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except PeakrecError as err:
        print(f"peakrec {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
