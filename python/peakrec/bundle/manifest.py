"""The manifest: what a bundle holds and the sha256 of every file; plus the durable-write helpers
used to publish bundles atomically."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from peakrec.errors import BundleError, NotFoundError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: str | Path) -> None:
    """fsyncs a file or a directory (so a rename or new entry inside it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def write_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(bundle: Path) -> dict[str, Any]:
    with open(bundle / MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def resolve(path: str | Path) -> Path:
    """A bundle directory, or the one named by ``CURRENT`` when ``path`` is a BUNDLES_DIR."""
    path = Path(path)
    if not (path / MANIFEST).exists() and (path / CURRENT).is_file():
        return path / read_current(path)
    return path


def read_current(bundles_dir: str | Path) -> str:
    """The bundle directory name ``bundles_dir/CURRENT`` points at (the one reader of CURRENT)."""
    bundles_dir = Path(bundles_dir)
    try:
        version = (bundles_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NotFoundError(f"{bundles_dir}/{CURRENT}: missing (build a bundle first)") from None
    if not version:
        raise BundleError(f"{bundles_dir}/{CURRENT}: empty")
    return version


def write_current(bundles_dir: str | Path, name: str) -> None:
    """Points ``bundles_dir/CURRENT`` at ``name`` atomically: temp file, fsync, rename, dir fsync
    (the one writer of CURRENT)."""
    bundles_dir = Path(bundles_dir)
    tmp = bundles_dir / f".{CURRENT}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, bundles_dir / CURRENT)
    fsync_path(bundles_dir)
