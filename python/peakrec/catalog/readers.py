"""Readers for item and user records: JSONL or Parquet, with embeddings either in an ``embedding``
field or in a ``.npy`` matrix whose rows are aligned with the records."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from peakrec.catalog.schema import ItemTable, Location, UserTable, add_item, add_user
from peakrec.errors import InvalidInputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_items(path: str | Path, vectors: str | Path | None = None, progress: Any = None) -> ItemTable:
    """Reads and checks items. Embeddings come from ``vectors`` (``.npy``, float [n, d]) when given,
    else from every record's ``embedding`` field. Row ``i`` of the result is record ``i``."""
    path = Path(path)
    table = ItemTable(where=_location(path))
    _read(path, table.where, lambda rec, where: add_item(table, rec, where), progress)
    if not len(table):
        raise InvalidInputError(f"{path.name}: no items (empty catalogue)")
    _check_unique(table.item_id, table.where, "item_id")
    if vectors is not None:
        table.vectors = load_vectors(vectors, len(table), path.name)
    else:
        table.vectors, has = _vectors_from_field(table.embedding, table.where)
        if not has.all():
            i = int(np.argmin(has))
            raise InvalidInputError(
                f'{table.where.at(i)}: missing required field "embedding" (no --item-vectors)'
            )
    table.embedding = []
    return table


def read_users(
    path: str | Path, vectors: str | Path | None = None, dimension: int | None = None, progress: Any = None
) -> UserTable:
    """Reads and checks users. A user without an embedding (field missing or null, or an all-zero
    row in ``vectors``) is cold. ``dimension``, when given, is the item dimension users must match."""
    path = Path(path)
    table = UserTable(where=_location(path))
    _read(path, table.where, lambda rec, where: add_user(table, rec, where), progress)
    _check_unique(table.user_id, table.where, "user_id")
    if vectors is not None:
        table.vectors = load_vectors(vectors, len(table), path.name)
        table.has_vector = np.any(table.vectors != 0, axis=1).astype(np.uint8)
    else:
        table.vectors, has = _vectors_from_field(table.embedding, table.where, dimension)
        table.has_vector = has.astype(np.uint8)
    table.embedding = []
    if dimension is not None and table.vectors.shape[1] != dimension and len(table):
        name = Path(vectors).name if vectors is not None else path.name
        raise InvalidInputError(
            f"{name}: user embedding dimension {table.vectors.shape[1]} does not match items' {dimension}"
        )
    if dimension is not None and not len(table):
        table.vectors = np.zeros((0, dimension), np.float32)
    return table


def load_vectors(path: str | Path, rows: int, records_name: str) -> np.ndarray:
    """Loads a row-aligned ``.npy`` matrix as float32 [rows, d], checking shape and finiteness."""
    path = Path(path)
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"{path.name}: not a readable .npy matrix ({err})") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InvalidInputError(
            f"{path.name}: expected a 2-d matrix [rows, dimension], got shape {matrix.shape}"
        )
    if not np.issubdtype(matrix.dtype, np.floating):
        raise InvalidInputError(f"{path.name}: expected float vectors, got dtype {matrix.dtype}")
    if matrix.shape[0] != rows:
        raise InvalidInputError(
            f"{path.name}: has {matrix.shape[0]} rows but {records_name} has {rows} records"
        )
    out = np.ascontiguousarray(matrix, dtype=np.float32)
    bad = _first_nonfinite_row(out)
    if bad >= 0:
        raise InvalidInputError(f"{path.name} row {bad}: NaN or infinite value in the vector")
    return out


def _location(path: Path) -> Location:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return Location(path.name, "line")
    if suffix in PARQUET_SUFFIXES:
        return Location(path.name, "row")
    raise InvalidInputError(f"{path.name}: unknown format (expected .jsonl or .parquet)")


def _read(path: Path, where: Location, add: Callable[[dict[str, Any], str], None], progress: Any) -> None:
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    records = _jsonl_records(path) if where.unit == "line" else _parquet_records(path)
    for number, rec in records:
        where.numbers.append(number)
        add(rec, f"{where.name} {where.unit} {number}")
        if progress is not None:
            progress.update(1)


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise InvalidInputError(
                    f"{path.name} line {number}: malformed JSON: {err.msg} (column {err.colno})"
                ) from None
            if not isinstance(rec, dict):
                raise InvalidInputError(f"{path.name} line {number}: expected a JSON object")
            yield number, rec


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InvalidInputError(f"{path.name}: not a readable Parquet file ({err})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=65536):
        for rec in batch.to_pylist():
            number += 1
            yield number, rec


def _check_unique(ids: list[str], where: Location, name: str) -> None:
    """Raises on the first repeated id, naming both places (vectorised: sorts once)."""
    arr = np.asarray(ids)
    if len(arr) < 2:
        return
    order = np.argsort(arr, kind="stable")
    same = arr[order[1:]] == arr[order[:-1]]
    if not same.any():
        return
    second = order[1:][same]
    first = order[:-1][same]
    k = int(np.argmin(second))
    i, j = int(first[k]), int(second[k])
    raise InvalidInputError(
        f'{where.at(j)}: {name} "{ids[j]}" appears twice (first on {where.unit} {where.numbers[i]})'
    )


def _vectors_from_field(
    embeddings: list[Any], where: Location, dimension: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stacks per-record ``embedding`` lists: float32 [n, d] (zero rows where missing), has bool [n]."""
    has = np.array([e is not None for e in embeddings], dtype=bool)
    d = dimension
    for i, e in enumerate(embeddings):
        if e is None:
            continue
        if d is None:
            d = len(e)
            if d == 0:
                raise InvalidInputError(f'{where.at(i)}: field "embedding" is empty')
        elif len(e) != d:
            raise InvalidInputError(f'{where.at(i)}: field "embedding" has dimension {len(e)}, expected {d}')
    out = np.zeros((len(embeddings), d or 0), dtype=np.float32)
    rows = np.flatnonzero(has)
    if len(rows):
        try:
            out[rows] = np.array([embeddings[i] for i in rows], dtype=np.float32)
        except (TypeError, ValueError):
            for i in rows:
                if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in embeddings[i]):
                    raise InvalidInputError(
                        f'{where.at(int(i))}: field "embedding" must hold numbers'
                    ) from None
            raise
    bad = _first_nonfinite_row(out)
    if bad >= 0:
        raise InvalidInputError(f'{where.at(bad)}: field "embedding" has a NaN or infinite value')
    return out, has


def _first_nonfinite_row(matrix: np.ndarray, chunk: int = 1 << 16) -> int:
    for start in range(0, len(matrix), chunk):
        ok = np.isfinite(matrix[start : start + chunk]).all(axis=1)
        if not ok.all():
            return start + int(np.argmin(ok))
    return -1
