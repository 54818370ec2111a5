"""``load_bundle``: maps a verified bundle read-only, so N worker processes share one copy.

FAISS in faiss-cpu 1.15 has two mmap flags. ``IO_FLAG_MMAP`` maps only the inverted lists of IVF
indexes (a Flat or HNSW index is still read into private memory). ``IO_FLAG_MMAP_IFC`` maps the whole
file and reads arrays in place: flat codes (Flat, SQ, PQ), HNSW's graph and storage, and IVF's
inverted lists (measured: anonymous memory stays at the interpreter's ~19 MB for Flat, HNSW32,Flat
and IVF,SQ8). The two cannot be combined (IVF then fails with "mmap only supported for File
objects"), so we use ``IO_FLAG_MMAP_IFC | IO_FLAG_READ_ONLY``. Numpy columns use ``mmap_mode="r"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from peakrec.bundle.manifest import resolve
from peakrec.bundle.verify import verify_bundle
from peakrec.errors import BundleError
from peakrec.retrieval.lists import ItemLists
from peakrec.retrieval.text import TextIndex

MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY


@dataclass(frozen=True)
class ItemColumns:
    """One read-only memory-mapped array per ``items/*.npy`` file (see docs/bundle-format.md)."""

    ids: np.ndarray
    ids_sorted: np.ndarray
    ids_order: np.ndarray
    titles: np.ndarray
    vectors: np.ndarray
    brand: np.ndarray
    category: np.ndarray
    price: np.ndarray
    stock: np.ndarray
    regions: np.ndarray
    launch_ts: np.ndarray
    presale_start: np.ndarray
    presale_end: np.ndarray
    member_only: np.ndarray
    campaigns: np.ndarray
    popularity: np.ndarray


@dataclass(frozen=True)
class UserColumns:
    """One read-only memory-mapped array per ``users/*.npy`` file."""

    ids: np.ndarray
    ids_sorted: np.ndarray
    ids_order: np.ndarray
    vectors: np.ndarray
    has_vector: np.ndarray
    region: np.ndarray
    segments: np.ndarray
    lifecycle: np.ndarray
    memberships_indptr: np.ndarray
    memberships: np.ndarray
    purchased_indptr: np.ndarray
    purchased: np.ndarray
    features_indptr: np.ndarray
    features: np.ndarray


class Bundle:
    """A loaded bundle. Arrays are read-only maps; nothing per item is copied into Python objects."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.config: dict[str, Any] = _json(path / "config.json")
        self.vocab: dict[str, Any] = _json(path / "vocab.json")
        self.index: faiss.Index = faiss.read_index(str(path / "index.faiss"), MMAP_FLAGS)
        # The walk's half-precision vectors (``retrieval.hnsw.half_vectors``), when built with them.
        self.index_half: np.ndarray | None = None
        if (path / "index_half.npy").exists():
            self.index_half = _npy(path / "index_half.npy")
            shape = (self.index.ntotal, self.index.d)
            half = self.index_half
            if half.dtype != np.uint16 or half.shape != shape or not half.flags.c_contiguous:
                raise BundleError(
                    f"index_half.npy is {half.dtype} {list(half.shape)}"
                    f"{'' if half.flags.c_contiguous else ' in Fortran order'}, "
                    f"the index needs C-ordered uint16 {list(shape)}"
                )
        self.items = ItemColumns(**_columns(path / "items", ItemColumns))
        # The filtered plans' inverted lists (``retrieval.lists``), in a bundle of enough items.
        self.lists: ItemLists | None = None
        if "lists" in manifest:
            try:
                self.lists = ItemLists.load(path / "lists", self.index.ntotal, manifest["lists"]["factors"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise BundleError(f"lists/: {err}") from None
        self.users = UserColumns(**_columns(path / "users", UserColumns))
        self.coldstart_table: np.ndarray = _npy(path / "coldstart/table.npy")
        self.region_popular: np.ndarray = _npy(path / "fallback/region_popular.npy")
        self.text_dir: Path = path / "text"
        # Search files (None in a bundle built without them): BM25 index and hashed-token table.
        self.text_index: TextIndex | None = None
        self.token_table: np.ndarray | None = None
        if (self.text_dir / "text.json").exists():
            self.text_index = TextIndex.load(self.text_dir)
            self.token_table = _npy(self.text_dir / "token_table.npy")
        self._regions = np.asarray(self.vocab["regions"])
        self._regions_order = np.argsort(self._regions)

    def item_rows(self, ids: Sequence[str]) -> np.ndarray:
        """int64 [len(ids)]: the row of each item id, -1 for unknown ids."""
        return _lookup(self.items.ids_sorted, self.items.ids_order, ids)

    def user_row(self, user_id: str) -> int:
        """The row of ``user_id`` in the users columns, -1 if unknown."""
        return int(_lookup(self.users.ids_sorted, self.users.ids_order, [user_id])[0])

    def region_index(self, code: str) -> int:
        """The bit of region ``code`` (index into vocab regions), -1 if unknown."""
        return int(_lookup(self._regions[self._regions_order], self._regions_order, [code])[0])

    def __repr__(self) -> str:
        c = self.manifest["counts"]
        d = self.manifest["dimension"]
        return f"Bundle({self.version!r}, items={c['items']}, users={c['users']}, d={d})"


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Loads the bundle at ``path`` (a bundle directory, or a BUNDLES_DIR with ``CURRENT``).

    With ``verify`` (the default) every file's sha256 and the schema version are checked first and a
    :class:`BundleError` names the first problem; a bad bundle is never returned.
    """
    bundle = resolve(path)
    if not bundle.is_dir():
        raise BundleError(f"bundle {bundle}: no such directory")
    if verify:
        manifest = verify_bundle(bundle)
    else:
        manifest = _json(bundle / "manifest.json")
    try:
        return Bundle(bundle, manifest)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise BundleError(f"bundle {bundle}: cannot be loaded ({err})") from None


def _lookup(ids_sorted: np.ndarray, order: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    query = np.asarray(ids, dtype=str)
    if query.size == 0 or len(ids_sorted) == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    fits = True
    if ids_sorted.dtype.kind == "U" and query.dtype.itemsize > ids_sorted.dtype.itemsize:
        # An id longer than every stored one is unknown; comparing it as is would widen (copy) the
        # whole id column to its length.
        fits = np.char.str_len(query) <= ids_sorted.dtype.itemsize // 4
        query = np.where(fits, query, "").astype(ids_sorted.dtype)
    pos = np.minimum(np.searchsorted(ids_sorted, query), len(ids_sorted) - 1)
    found = (ids_sorted[pos] == query) & fits
    return np.where(found, np.asarray(order)[pos], -1).astype(np.int64)


def _json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _npy(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _columns(directory: Path, cls: type) -> dict[str, np.ndarray]:
    return {f.name: _npy(directory / f"{f.name}.npy") for f in fields(cls)}
