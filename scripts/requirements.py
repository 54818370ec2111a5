"""Prints the requirements of pyproject.toml, one per line: the runtime dependencies plus those of the
extras named on the command line (``requirements.py test dev``). The Makefile installs them with pip.

Reads TOML with tomllib (3.11+) or tomli (3.10; the Makefile installs it first)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no extra {unknown[0]!r} (have {', '.join(sorted(optional))})")
    return list(project["dependencies"]) + [r for e in extras for r in optional[e]]


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(requirements(root / "pyproject.toml", sys.argv[1:])))
