"""``peakrec prune``: removes old bundle versions from a BUNDLES_DIR, keeping the newest N.

Never removed: the bundle ``CURRENT`` names, and any bundle a worker reports serving in
``STATE_DIR/workers/*.json`` (a swap in progress). A bundle is first renamed to a hidden name, then
deleted, so a server asked to load it meanwhile finds no bundle rather than half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from peakrec.bundle.manifest import CURRENT, read_manifest


@dataclass
class PruneResult:
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    protected: dict[str, str] = field(default_factory=dict)  # version -> why it is kept beyond N


def bundle_versions(bundles_dir: Path) -> list[tuple[str, str]]:
    """(created_at, name) of every bundle directory (one with a readable manifest), newest first."""
    found = []
    for path in bundles_dir.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            created = str(read_manifest(path).get("created_at", ""))
        except (OSError, ValueError):
            continue  # not a bundle (or a broken one): not ours to delete
        found.append((created, path.name))
    return sorted(found, reverse=True)


def served_versions(bundles_dir: Path, state_dir: Path) -> dict[str, str]:
    """Bundle directory names that must stay, with the reason."""
    protected = {}
    try:
        current = (bundles_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        current = ""
    if current:
        protected[current] = "CURRENT"
    for status in sorted((state_dir / "workers").glob("*.json")):
        try:
            data = json.loads(status.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        name = data.get("bundle_dir") or data.get("bundle_version")
        if name and name not in protected:
            protected[name] = f"served by worker {data.get('index', status.stem)}"
    return protected


def prune(
    bundles_dir: str | Path, keep: int, state_dir: str | Path | None = None, dry_run: bool = False
) -> PruneResult:
    """Removes all but the ``keep`` newest bundles (by the manifest's ``created_at``) of ``bundles_dir``,
    sparing CURRENT and any bundle a worker serves. ``dry_run`` only reports."""
    if keep < 1:
        raise ValueError(f"keep {keep}: must be at least 1")
    bundles_dir = Path(bundles_dir)
    state_dir = Path(state_dir) if state_dir is not None else bundles_dir / ".state"
    protected = served_versions(bundles_dir, state_dir)
    result = PruneResult()
    for rank, (_, name) in enumerate(bundle_versions(bundles_dir)):
        if rank < keep:
            result.kept.append(name)
        elif name in protected:
            result.kept.append(name)
            result.protected[name] = protected[name]
        else:
            result.removed.append(name)
    if dry_run:
        return result
    for name in result.removed:
        hidden = bundles_dir / f".prune-{name}-{os.getpid()}"
        os.replace(bundles_dir / name, hidden)
        shutil.rmtree(hidden)
        (state_dir / f"items-{name}.state").unlink(missing_ok=True)
    return result
