"""The `peakrec` command. Each subcommand lives beside the code it drives and registers here.

Exit codes (the same for every subcommand):

* 0 — success.
* 1 — runtime failure: bad input data (the message names file and line), a bundle that fails
  verification, a server that could not start, or a server answering with an error status.
* 2 — usage: unknown or malformed flags, values out of range (argparse's convention).
* 69 — unavailable (``EX_UNAVAILABLE`` of sysexits.h): the server could not be reached, or answered
  UNAVAILABLE, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED — worth retrying later.
* 130 — interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from peakrec.errors import PeakrecError, UsageError

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_INTERRUPTED = 130

# Modules that define `register(subparsers)`; each adds its subcommands with `set_defaults(run=...)`.
COMMAND_MODULES: list[str] = [
    "peakrec.catalog.cli",
    "peakrec.bundle.cli",
    "peakrec.evaluation.cli",
    "peakrec.service.cli",
]

EPILOG = (
    "exit codes: 0 success, 1 runtime failure (bad data, failed verification, error status), "
    "2 usage, 69 server unavailable (retry later), 130 interrupted"
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every flag's help unless the default is empty (None, False, [])
    or the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default" in text
            or default in (None, False, "", [])
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def number(kind: type, low: float | None = None, high: float | None = None) -> Any:
    """An argparse ``type`` that parses ``kind`` and refuses values outside [low, high] (usage error).

    >>> p.add_argument("--min-recall", type=number(float, 0, 1))
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value != value or (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be {bounds})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


PORT = number(int, 0, 65535)


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching: not with ``--quiet``, not when stderr is a pipe or
    a file (CI logs, ``2> log``)."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _version() -> str:
    from importlib import metadata

    try:
        version = metadata.version("peakrec")
    except metadata.PackageNotFoundError:  # run from a source tree without an install
        from peakrec import __version__ as version
    return f"peakrec {version} (Python {sys.version.split()[0]})"


def parser() -> argparse.ArgumentParser:
    """The whole command tree; every parser in it uses :class:`HelpFormatter`."""
    root = argparse.ArgumentParser(prog="peakrec", description="Recommendation serving core.", epilog=EPILOG)
    root.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for p in walk(root):
        p.formatter_class = HelpFormatter
    return root


def walk(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``p`` and every subcommand parser below it."""
    found = [p]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found += walk(child)
    return found


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UsageError as err:
        print(f"peakrec {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except PeakrecError as err:
        print(f"peakrec {args.command}: error: {err}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def report_rpc_error(err: Any, command: str = "query") -> int:
    """Prints a failed call's status code and message (no traceback); returns the exit code."""
    import grpc

    code = err.code()
    print(f"peakrec {command}: {code.name}: {err.details()}", file=sys.stderr)
    unavailable = (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    return EXIT_UNAVAILABLE if code in unavailable else EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
