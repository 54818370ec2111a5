"""Feature hashing compatible bit for bit with scikit-learn's ``FeatureHasher``, in Rust."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from peakrec import _core
from peakrec.errors import InvalidInputError

_INPUT_TYPES = ("dict", "pair", "string")


class FeatureHasher:
    """Drop-in replacement for ``sklearn.feature_extraction.FeatureHasher``.

    Same parameters and the same output, bit for bit: MurmurHash3 (seed 0) of each feature name
    (``"key=value"`` for str values) picks column ``abs(h) % n_features`` and, with
    ``alternate_sign``, the sign of ``h``; zero values are dropped and duplicates summed.
    Hashing runs in Rust on ``n_threads`` threads (``None``: all cores): string rows given as lists
    or tuples of ``str`` are read in place by the threads while the GIL is held; other input is
    read one object at a time, then merged with the GIL released. The output does not depend on
    the thread count. Unlike scikit-learn, NaN or infinite values are rejected rather than stored.
    """

    def __init__(
        self,
        n_features: int = 2**20,
        *,
        input_type: str = "dict",
        dtype: Any = np.float64,
        alternate_sign: bool = True,
        n_threads: int | None = None,
    ) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral):
            raise InvalidInputError(f"n_features must be an integer, got {type(n_features).__name__}")
        if not 1 <= int(n_features) <= 2**31 - 1:
            raise InvalidInputError(f"n_features must be between 1 and 2**31-1, got {n_features}")
        if input_type not in _INPUT_TYPES:
            raise InvalidInputError(f"input_type must be one of {_INPUT_TYPES}, got {input_type!r}")
        if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise InvalidInputError(f"dtype must be float64 or float32, got {np.dtype(dtype)}")
        if n_threads is not None and n_threads < 1:
            raise InvalidInputError(f"n_threads must be at least 1, got {n_threads}")
        self.n_features = int(n_features)
        self.input_type = input_type
        self.dtype = dtype
        self.alternate_sign = bool(alternate_sign)
        self.n_threads = n_threads

    def fit(self, X: Any = None, y: Any = None) -> FeatureHasher:
        """No-op, as in scikit-learn: the hasher is stateless."""
        return self

    def transform_csr(self, raw_X: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hashes rows into CSR parts ``(indptr, indices, data)`` without needing scipy.

        ``indices`` is int32, ``indptr`` int32 (int64 beyond 2**31-1 entries), ``data`` of ``dtype``.
        Column indices are sorted within each row and duplicates summed (canonical CSR).
        """
        float32 = np.dtype(self.dtype) == np.float32
        return _core.hash_csr(
            raw_X, self.n_features, self.input_type, self.alternate_sign, float32, self.n_threads
        )

    def transform(self, raw_X: Iterable[Any]) -> Any:
        """Hashes rows into a ``scipy.sparse.csr_matrix`` of shape ``(n_samples, n_features)``."""
        import scipy.sparse as sp

        indptr, indices, data = self.transform_csr(raw_X)
        if len(indptr) == 1:
            raise InvalidInputError("Cannot vectorize empty sequence.")
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, self.n_features))
        matrix.has_canonical_format = True
        return matrix

    def transform_arrow(self, column: Any) -> Any:
        """Hashes an Arrow ``list<string>`` column (one list of feature names per row, as read from
        Parquet) into a ``scipy.sparse.csr_matrix``, equal to ``transform`` of the same rows with
        ``input_type="string"``. The Arrow buffers are read in place and all the work runs in
        parallel with the GIL released: the fast path for offline pipelines.
        """
        import scipy.sparse as sp

        indptr, indices, data = self.transform_arrow_csr(column)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, self.n_features))
        matrix.has_canonical_format = True
        return matrix

    def transform_arrow_csr(self, column: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR parts ``(indptr, indices, data)`` of an Arrow ``list<string>`` column."""
        data, offsets, row_indptr = _arrow_buffers(column)
        float32 = np.dtype(self.dtype) == np.float32
        return _core.hash_flat_csr(
            data, offsets, row_indptr, self.n_features, self.alternate_sign, None, float32, self.n_threads
        )

    def fit_transform(self, raw_X: Iterable[Any], y: Any = None) -> Any:
        return self.transform(raw_X)

    def pool(self, raw_X: Iterable[Any], table: np.ndarray, mode: str = "sum") -> np.ndarray:
        """Pooled embeddings of hashed rows: ``float32[n_rows, dim]``.

        ``table`` is ``float32[n_features, dim]`` (C-contiguous). Row ``r`` is the sum over its
        features of ``value * sign * table[bucket]`` (equal to ``transform(raw_X) @ table``), or
        with ``mode="mean"`` that sum divided by the row's number of non-zero features.
        """
        table = _as_table(table, self.n_features)
        return _core.hash_pool(
            raw_X, self.n_features, self.input_type, self.alternate_sign, table, mode, self.n_threads
        )

    def __repr__(self) -> str:
        return (
            f"FeatureHasher(n_features={self.n_features}, input_type={self.input_type!r}, "
            f"dtype={np.dtype(self.dtype).name}, alternate_sign={self.alternate_sign})"
        )


def _arrow_buffers(column: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(utf-8 bytes, name offsets, row offsets int64) of a list<string> Arrow column, in place."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if (
        not isinstance(column, pa.Array)
        or not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type))
        or not (
            pa.types.is_string(column.type.value_type) or pa.types.is_large_string(column.type.value_type)
        )
    ):
        kind = getattr(column, "type", type(column).__name__)
        raise InvalidInputError(f"expected an Arrow list<string> column, got {kind}")
    if column.null_count:
        raise InvalidInputError(f"row {column.is_null().index(True).as_py()}: the list of features is null")
    names = column.flatten()
    if names.null_count:
        raise InvalidInputError("a feature name is null")
    row_offsets = np.asarray(column.offsets, dtype=np.int64)
    row_indptr = row_offsets - row_offsets[0]
    offset_type = np.int64 if pa.types.is_large_string(names.type) else np.int32
    _, offsets_buffer, data_buffer = names.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[names.offset : names.offset + len(names) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data, offsets, row_indptr


def _as_table(table: Any, n_features: int) -> np.ndarray:
    if not isinstance(table, np.ndarray):
        raise InvalidInputError(f"table must be a numpy array, got {type(table).__name__}")
    if table.dtype != np.float32:
        raise InvalidInputError(f"table must be float32, got {table.dtype}")
    if table.ndim != 2 or table.shape[0] != n_features:
        raise InvalidInputError(f"table must have shape ({n_features}, dim), got {table.shape}")
    if not table.flags.c_contiguous:
        raise InvalidInputError("table must be C-contiguous (np.ascontiguousarray)")
    return table
