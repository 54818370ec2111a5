"""Live item state shared by every worker: a memory-mapped file per bundle plus a durable journal.

```
STATE_DIR/
  journal.jsonl           one line per acknowledged UpdateItems:
                            {"seq": 7, "updates": [[item_id, stock, price, available], ...]} (null: keep)
                          fsynced before the RPC replies, replayed on start and onto newly loaded bundles;
                          compacted past ``compact_bytes``: its lines become one snapshot line (each item's
                          latest values) carrying the last seq, so replays stay short
  seq                     uint64: the journal's last sequence number, mapped by every worker
  lock                    flock: one writer at a time, and one builder of a state file
  items-<version>.state   header + stock i32[n] + price f32[n] + available u8[n], row-aligned with the bundle
```

Workers serving the same bundle share one state file, so a write is visible to all of them as soon as it
is made. A worker serving another bundle (during a hot swap) sees ``seq`` move past its file's last
applied sequence number and replays the journal's tail before answering, so an acknowledged update is
never missed. Updates carry absolute values, so replaying one twice is harmless.

Compaction rewrites the journal (atomically, under the lock), so byte offsets into it move while
sequence numbers do not: a file whose saved offset no longer starts the line after its last applied
seq re-reads the journal from the start, skipping the seqs it has.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import mmap
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from peakrec.errors import InvalidInputError, NotFoundError
from peakrec.state import ItemState

MAGIC = b"PKRSTATE"
# magic, n items, last applied seq, journal byte offset after it; padded so the columns are aligned.
HEADER_BYTES = 64
JOURNAL = "journal.jsonl"
COMPACT_BYTES = 64 << 20  # journal size past which a write compacts it (and past twice the snapshot)


@dataclass(frozen=True)
class ItemUpdate:
    """One item's change; ``None`` leaves a column as it is."""

    item_id: str
    stock: int | None = None
    price: float | None = None
    available: bool | None = None


def _state_path(state_dir: Path, version: str) -> Path:
    return state_dir / f"items-{version}.state"


def _layout(n: int) -> tuple[int, int, int, int]:
    """Byte offsets of stock, price, available, and the file size."""
    stock = HEADER_BYTES
    price = stock + 4 * n
    available = price + 4 * n
    return stock, price, available, available + n


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with open(state_dir / "lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_journal(state_dir: Path, offset: int = 0) -> Iterator[tuple[int, int, list[list[Any]]]]:
    """Yields (seq, byte offset after the line, updates) for each complete line from ``offset``."""
    path = state_dir / JOURNAL
    if not path.exists():
        return
    with open(path, "rb") as journal:
        journal.seek(offset)
        position = offset
        for line in journal:
            if not line.endswith(b"\n"):
                return  # a torn last line was never acknowledged
            try:
                entry = json.loads(line)
                seq, updates = int(entry["seq"]), entry["updates"]
            except (ValueError, KeyError, TypeError):
                return  # the same, followed by an append made before the tail was repaired
            position += len(line)
            yield seq, position, updates


def _compact(state_dir: Path) -> int:
    """Rewrites the journal as one snapshot line holding each item's latest values under the last
    seq (caller holds the lock); returns the new journal's size."""
    latest: dict[str, list[Any]] = {}
    last_seq = 0
    for seq, _, updates in _read_journal(state_dir):
        last_seq = seq
        for item_id, *values in updates:
            merged = latest.setdefault(item_id, [None, None, None])
            for i, value in enumerate(values):
                if value is not None:
                    merged[i] = value
    line = json.dumps({"seq": last_seq, "updates": [[k, *v] for k, v in latest.items()]}, ensure_ascii=False)
    tmp = state_dir / (JOURNAL + ".tmp")
    with open(tmp, "wb") as f:
        f.write(line.encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, state_dir / JOURNAL)
    directory = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return size


def prepare(state_dir: Path) -> int:
    """Readies STATE_DIR before workers start (the supervisor calls this once).

    Drops a torn journal tail, rewrites ``seq`` from the journal, and deletes the mapped state files so
    workers rebuild them from the bundle plus the journal: after a crash the journal is the truth.
    Returns the journal's last sequence number.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        last_seq, good = 0, 0
        for seq, position, _ in _read_journal(state_dir):
            last_seq, good = seq, position
        journal = state_dir / JOURNAL
        if journal.exists() and journal.stat().st_size != good:
            with open(journal, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        for stale in state_dir.glob("items-*.state*"):
            stale.unlink()
        _write_seq_file(state_dir, last_seq)
    return last_seq


def _write_seq_file(state_dir: Path, seq: int) -> None:
    path = state_dir / "seq"
    if not path.exists() or path.stat().st_size != 8:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(np.uint64(seq).tobytes())
        os.replace(tmp, path)
    else:
        with open(path, "r+b") as f:
            f.write(np.uint64(seq).tobytes())


class SharedItemState:
    """The live state of one bundle's items, mapped from STATE_DIR; see the module docstring.

    ``bundle`` needs ``version``, ``items.stock`` and ``items.price`` (build-time values) and
    ``item_rows(ids) -> int64 rows, -1 for unknown``.
    """

    def __init__(self, state_dir: Path, bundle: Any, compact_bytes: int = COMPACT_BYTES):
        self.state_dir = Path(state_dir)
        self.bundle = bundle
        self.compact_bytes = compact_bytes
        self._snapshot: int | None = None
        self.n = len(bundle.items.stock)
        path = _state_path(self.state_dir, bundle.version)
        with _locked(self.state_dir):
            if not (self.state_dir / "seq").exists():  # used without `prepare` (a library caller)
                _write_seq_file(
                    self.state_dir, max((s for s, _, _ in _read_journal(self.state_dir)), default=0)
                )
            if not path.exists():
                self._create(path)
            with open(path, "r+b") as f:  # the mapping keeps its own descriptor
                self._map = mmap.mmap(f.fileno(), 0)
        header = np.frombuffer(self._map, dtype=np.uint64, count=4, offset=0)
        if self._map[:8] != MAGIC or int(header[1]) != self.n:
            raise InvalidInputError(f"{path}: not a state file for {self.n} items")
        # header[2] = last applied seq, header[3] = journal offset after it
        self._header = header
        stock, price, available, _ = _layout(self.n)
        self.state = ItemState(
            stock=np.frombuffer(self._map, dtype=np.int32, count=self.n, offset=stock),
            price=np.frombuffer(self._map, dtype=np.float32, count=self.n, offset=price),
            available=np.frombuffer(self._map, dtype=np.uint8, count=self.n, offset=available),
        )
        with open(self.state_dir / "seq", "r+b") as f:
            self._seq_map = mmap.mmap(f.fileno(), 8)
        self._seq = np.frombuffer(self._seq_map, dtype=np.uint64, count=1)
        # The journal position up to which this process's kept eligible-row sets
        # (``state.kept``, built from the arrays on the first request) have seen the changes:
        # whichever worker applies an update, every worker touches the changed rows' sets.
        self._kept_seq, self._kept_offset = int(self._header[2]), int(self._header[3])
        self.refresh()

    def _create(self, path: Path) -> None:
        """Writes a state file from the bundle's build-time columns plus the whole journal (under lock)."""
        stock_at, price_at, available_at, size = _layout(self.n)
        tmp = path.with_suffix(".state.tmp")
        with open(tmp, "w+b") as f:
            f.truncate(size)
            buf = mmap.mmap(f.fileno(), size)
            try:
                stock = np.frombuffer(buf, dtype=np.int32, count=self.n, offset=stock_at)
                price = np.frombuffer(buf, dtype=np.float32, count=self.n, offset=price_at)
                available = np.frombuffer(buf, dtype=np.uint8, count=self.n, offset=available_at)
                stock[:] = np.asarray(self.bundle.items.stock, dtype=np.int32)
                price[:] = np.asarray(self.bundle.items.price, dtype=np.float32)
                available[:] = 1
                last_seq, offset = 0, 0
                for seq, position, updates in _read_journal(self.state_dir):
                    self._apply_rows(updates, stock, price, available, strict=False)
                    last_seq, offset = seq, position
                buf[:8] = MAGIC
                header = np.frombuffer(buf, dtype=np.uint64, count=4)
                header[1], header[2], header[3] = self.n, last_seq, offset
                del stock, price, available, header
                buf.flush()
            finally:
                buf.close()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @property
    def applied_seq(self) -> int:
        return int(self._header[2])

    @property
    def journal_seq(self) -> int:
        return int(self._seq[0])

    def refresh(self) -> None:
        """Replays journal lines this bundle's file has not seen yet, and brings the kept
        eligible-row sets up to the file (cheap when there is nothing new)."""
        if self._header[2] < self._seq[0]:
            with _locked(self.state_dir):
                self._catch_up()
        if self._header[2] > self._kept_seq:
            self._sync_kept()

    def _sync_kept(self) -> None:
        """Touches the kept sets' rows named by the journal lines this file has applied since they
        last looked (only those: a line's arrays are written before the file's seq moves past it)."""
        target, kept = int(self._header[2]), self.state.kept
        if kept is None:  # not built yet: it will be built from the arrays as they are then
            self._kept_seq, self._kept_offset = target, int(self._header[3])
            return
        lines = _read_journal(self.state_dir, self._kept_offset)
        first = next(lines, None)
        if first is None or first[0] != self._kept_seq + 1:
            lines, first = _read_journal(self.state_dir), None  # compacted since: offsets moved
        ids: list[str] = []
        seen, offset = self._kept_seq, self._kept_offset
        for seq, position, updates in itertools.chain([first] if first else [], lines):
            if seq > target:
                break
            if seq > self._kept_seq:
                ids.extend(u[0] for u in updates)
            seen, offset = max(seen, seq), position
        if ids:
            rows = np.asarray(self.bundle.item_rows(ids), dtype=np.int64)
            kept.touch(rows[rows >= 0])
        self._kept_seq, self._kept_offset = seen, offset

    def _catch_up(self) -> None:
        s, applied = self.state, int(self._header[2])
        lines = _read_journal(self.state_dir, int(self._header[3]))
        first = next(lines, None)
        if (first is None and int(self._seq[0]) > applied) or (first is not None and first[0] != applied + 1):
            # compacted since this file last read it: the offset is stale, the seqs are not
            lines, first = _read_journal(self.state_dir), None
        for seq, offset, updates in itertools.chain([first] if first else [], lines):
            if seq > applied:
                self._apply_rows(updates, s.stock, s.price, s.available, strict=False)
            self._header[2], self._header[3] = max(seq, applied), offset

    def _apply_rows(
        self,
        updates: Sequence[Sequence[Any]],
        stock: np.ndarray,
        price: np.ndarray,
        available: np.ndarray,
        strict: bool,
    ) -> None:
        ids = [u[0] for u in updates]
        rows = np.asarray(self.bundle.item_rows(ids), dtype=np.int64)
        if strict and (rows < 0).any():
            unknown = [ids[i] for i in np.flatnonzero(rows < 0)[:5]]
            raise NotFoundError(f"updates: item_id {', '.join(map(repr, unknown))} not in the bundle")
        for (_, new_stock, new_price, new_available), row in zip(updates, rows.tolist(), strict=True):
            if row < 0:
                continue  # an item this bundle does not have
            if new_stock is not None:
                stock[row] = new_stock
            if new_price is not None:
                price[row] = new_price
            if new_available is not None:
                available[row] = 1 if new_available else 0

    def apply(self, updates: Sequence[ItemUpdate]) -> int:
        """Validates, journals (fsync) and applies ``updates`` all-or-none; returns their seq.

        Raises ``InvalidInputError`` for a bad value and ``NotFoundError`` for an item id this bundle
        does not have, naming it; nothing is applied then.
        """
        if not updates:
            raise InvalidInputError("updates: empty")
        rows_form = []
        for i, u in enumerate(updates):
            if not u.item_id:
                raise InvalidInputError(f"updates[{i}].item_id: empty")
            if u.stock is not None and u.stock < 0:
                raise InvalidInputError(f"updates[{i}].stock: {u.stock} is negative")
            if u.price is not None and not (np.isfinite(u.price) and u.price >= 0):
                raise InvalidInputError(f"updates[{i}].price: {u.price} is not a price")
            rows_form.append(
                [
                    u.item_id,
                    None if u.stock is None else int(u.stock),
                    None if u.price is None else float(u.price),
                    None if u.available is None else bool(u.available),
                ]
            )
        rows = np.asarray(self.bundle.item_rows([u.item_id for u in updates]), dtype=np.int64)
        if (rows < 0).any():
            unknown = [updates[i].item_id for i in np.flatnonzero(rows < 0)[:5]]
            raise NotFoundError(f"updates: item_id {', '.join(map(repr, unknown))} not in the bundle")
        with _locked(self.state_dir):
            self._catch_up()  # now header[2] is the journal's last seq and header[3] the end of its line
            seq = int(self._header[2]) + 1
            line = json.dumps({"seq": seq, "updates": rows_form}, ensure_ascii=False) + "\n"
            with open(self.state_dir / JOURNAL, "ab") as journal:
                if journal.tell() != int(self._header[3]):
                    # a writer killed mid-append left a torn line; it was never acknowledged
                    journal.truncate(int(self._header[3]))
                journal.write(line.encode())
                journal.flush()
                os.fsync(journal.fileno())
                offset = journal.tell()
            s = self.state
            self._apply_rows(rows_form, s.stock, s.price, s.available, strict=True)
            if offset > self.compact_bytes and offset > 2 * self._snapshot_bytes():
                offset = self._snapshot = _compact(self.state_dir)
            self._header[2], self._header[3] = seq, offset
            self._seq[0] = seq  # published last: other bundles' files catch up from here
        self._sync_kept()
        return seq

    def unlink(self) -> None:
        """Removes this bundle's state file once it is no longer served, so swaps do not pile them
        up. Mappings of it stay valid (an unlinked file lives while mapped) and writes through them
        still reach the journal; a process that loads the bundle again rebuilds the file from the
        bundle plus the journal."""
        with _locked(self.state_dir):
            _state_path(self.state_dir, self.bundle.version).unlink(missing_ok=True)

    def _snapshot_bytes(self) -> int:
        """The size of the journal's first line (after a compaction, the snapshot), read once."""
        if self._snapshot is None:
            with open(self.state_dir / JOURNAL, "rb") as journal:
                self._snapshot = len(journal.readline())
        return self._snapshot
