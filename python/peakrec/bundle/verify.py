"""Checks a bundle against its manifest: schema version and the sha256 of every listed file."""

from __future__ import annotations

import json
from pathlib import Path

from peakrec.bundle.manifest import MANIFEST, SCHEMA_VERSION, sha256_file
from peakrec.errors import BundleError


def verify_bundle(path: str | Path, progress: bool = False) -> dict:
    """Returns the manifest of a sound bundle; raises :class:`BundleError` naming the first problem
    (missing manifest, wrong schema version, missing file, checksum mismatch, unlisted file)."""
    problems = find_problems(path, progress=progress)
    if problems:
        raise BundleError(
            f"bundle {Path(path)}: {problems[0]}"
            + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
        )
    with open(Path(path) / MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def find_problems(path: str | Path, progress: bool = False) -> list[str]:
    """Every problem found, as one line each (empty list: the bundle is sound)."""
    path = Path(path)
    try:
        with open(path / MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return [f"{MANIFEST} is missing (not a bundle directory)"]
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return [f"{MANIFEST} is not valid JSON ({err})"]
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        version = manifest.get("schema_version") if isinstance(manifest, dict) else None
        return [f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"]
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return [f"{MANIFEST} lists no files"]
    problems = []
    items = sorted(files.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="verify", unit="file", leave=False)
    for rel, expected in items:
        file = path / rel
        if not file.is_file():
            problems.append(f"{rel} is missing")
        elif sha256_file(file) != expected:
            problems.append(f"{rel}: sha256 mismatch (file changed or corrupt)")
    listed = set(files) | {MANIFEST}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel not in listed:
            problems.append(f"{rel} is not listed in the manifest")
    return problems
