"""Bilingual text search: the analyzer, a BM25 index (Rust), and hashed-token vector recall.

The analyzer (NFKC, lowercase, Latin/digit words, CJK bigrams, ``brand:``/``cat:`` field tokens) and
the BM25 index live in ``peakrec._core``; this module wraps them, saves and loads the index as ``.npy``
files plus ``text.json``, and fits the hashed-token table that turns a query into an item-space
vector. See ``docs/search.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from peakrec import _core
from peakrec.errors import BundleError, InvalidInputError
from peakrec.features import FeatureHasher

INDEX_FORMAT = "peakrec-text-bm25"
INDEX_FORMAT_VERSION = 1
ANALYZER = "nfkc-lower-words-cjk-bigrams-fields/1"
META_FILE = "text.json"
MAX_QUERY_CHARS = 256
DIRECT_SOLVE_MAX_COLUMNS = 4096  # token-table fits with at most this many used buckets solve exactly

# name -> dtype of every array of the index; each is saved as <name>.npy.
ARRAY_DTYPES: dict[str, np.dtype] = {
    "vocab_bytes": np.dtype(np.uint8),
    "vocab_offsets": np.dtype(np.int64),
    "postings_indptr": np.dtype(np.int64),
    "postings_docs": np.dtype(np.int32),
    "postings_tf": np.dtype(np.uint16),
    "doc_len": np.dtype(np.uint32),
    "doc_row": np.dtype(np.int32),
    "doc_norm": np.dtype(np.float32),
    "term_idf": np.dtype(np.float32),
    "term_max_score": np.dtype(np.float32),
    "block_indptr": np.dtype(np.int64),
    "block_max_score": np.dtype(np.float32),
}
_SEARCH_ARRAYS = (
    "vocab_bytes",
    "vocab_offsets",
    "postings_indptr",
    "postings_docs",
    "postings_tf",
    "doc_row",
    "doc_norm",
    "term_idf",
    "term_max_score",
    "block_indptr",
    "block_max_score",
)


def check_query(query: Any) -> str:
    """Returns ``query`` if it is a usable search query, else raises ``InvalidInputError``.

    A query must be a str that is not empty or whitespace only, of at most 256 characters.
    """
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}")
    _core.text_check_query(query)
    return query


def analyze(text: str) -> list[str]:
    """Query tokens of ``text``: the analyzer the index uses, with ``brand:x``/``cat:x`` kept whole."""
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, got {type(text).__name__}")
    return _core.text_analyze(text)


def analyze_document(title: str, brand: str = "", category: str = "") -> list[str]:
    """Tokens of one item as indexed: title, brand words + ``brand:<brand>``, and for each component
    of the ``>``-separated category path its words + ``cat:<component>``."""
    return _core.text_analyze_document(title, brand, category)


def analyze_documents(
    titles: Sequence[str],
    brands: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    n_threads: int | None = None,
) -> list[list[str]]:
    """``analyze_document`` of every row (in parallel, in Rust)."""
    return _core.text_analyze_batch(
        _strings(titles, "titles"),
        _optional_strings(brands, "brands"),
        _optional_strings(categories, "categories"),
        n_threads,
    )


class TextIndex:
    """A BM25 index over item rows ``0..n_docs``, searched in Rust with MaxScore pruning.

    Arrays (see ``ARRAY_DTYPES`` and docs/search.md): vocabulary as one UTF-8 blob
    ``vocab_bytes`` with ``vocab_offsets`` [n_terms + 1] (terms sorted, looked up by binary search);
    CSR postings ``postings_indptr`` [n_terms + 1], ``postings_docs`` int32 and ``postings_tf``
    uint16 [n_postings] holding internal document ids (documents numbered shortest first),
    ascending per term; ``doc_row`` int32 [n_docs] (internal id -> item row), ``doc_norm`` float32
    [n_docs] by internal id, ``doc_len`` uint32 [n_docs] by row; ``term_idf`` and
    ``term_max_score`` float32 [n_terms]; ``block_indptr`` [n_terms + 1] and ``block_max_score``
    float32 [n_blocks], the best contribution in each block of 128 postings.
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], *, verify: bool = False) -> None:
        self.arrays = arrays
        self.meta = meta
        self.k1 = float(meta["k1"])
        self.b = float(meta["b"])
        self.avg_doc_len = float(meta["avg_doc_len"])
        self._core = _core.TextIndexCore(*(arrays[name] for name in _SEARCH_ARRAYS), self.k1, verify)

    @classmethod
    def build(
        cls,
        titles: Sequence[str],
        brands: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        *,
        n_threads: int | None = None,
    ) -> TextIndex:
        """Indexes ``titles[i]`` (+ ``brands[i]``, ``categories[i]`` as ``"a>b>c"`` paths) as row i.

        Sequences of str (lists or numpy ``<U`` arrays) of equal length; "" means no brand/category.
        Runs in Rust on ``n_threads`` threads (``None``: all cores) with the GIL released.
        """
        arrays, avg_doc_len = _core.text_build(
            _strings(titles, "titles"),
            _optional_strings(brands, "brands"),
            _optional_strings(categories, "categories"),
            float(k1),
            float(b),
            n_threads,
        )
        meta = {
            "format": INDEX_FORMAT,
            "format_version": INDEX_FORMAT_VERSION,
            "analyzer": ANALYZER,
            "k1": float(np.float32(k1)),
            "b": float(np.float32(b)),
            "avg_doc_len": float(avg_doc_len),
            "n_docs": int(len(arrays["doc_len"])),
            "n_terms": int(len(arrays["term_idf"])),
            "n_postings": int(len(arrays["postings_docs"])),
        }
        return cls(arrays, meta)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Writes one ``<name>.npy`` per array and ``text.json`` (written last) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ARRAY_DTYPES:
            np.save(directory / f"{name}.npy", np.ascontiguousarray(self.arrays[name]), allow_pickle=False)
        meta = dict(self.meta, files=[f"{name}.npy" for name in ARRAY_DTYPES])
        (directory / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, verify: bool = False) -> TextIndex:
        """Maps a saved index read-only (``np.load(mmap_mode="r")``): nothing is copied or read ahead.

        Lengths and offsets are always checked; ``verify=True`` also checks every posting (reads
        the whole postings array). Raises ``BundleError`` for a missing, foreign or corrupt index.
        """
        directory = Path(directory)
        meta_path = directory / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{meta_path}: cannot read text index metadata: {e}") from e
        if meta.get("format") != INDEX_FORMAT or meta.get("format_version") != INDEX_FORMAT_VERSION:
            raise BundleError(
                f"{meta_path}: expected format {INDEX_FORMAT!r} version {INDEX_FORMAT_VERSION}, "
                f"got {meta.get('format')!r} version {meta.get('format_version')!r}"
            )
        missing = {"k1", "b", "avg_doc_len"} - set(meta)
        if missing:
            raise BundleError(f"{meta_path}: missing {sorted(missing)}")
        if meta.get("analyzer") != ANALYZER:
            raise BundleError(
                f"{meta_path}: index built by analyzer {meta.get('analyzer')!r}, not {ANALYZER!r}"
            )
        arrays = {}
        for name, dtype in ARRAY_DTYPES.items():
            path = directory / f"{name}.npy"
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise BundleError(f"{path}: cannot map text index array: {e}") from e
            if array.dtype != dtype or array.ndim != 1:
                raise BundleError(f"{path}: expected 1-d {dtype}, got {array.ndim}-d {array.dtype}")
            arrays[name] = array
        if len(arrays["doc_len"]) != len(arrays["doc_norm"]):
            raise BundleError(f"{directory}: doc_len and doc_norm differ in length")
        try:
            return cls(arrays, meta, verify=verify)
        except InvalidInputError as e:
            raise BundleError(f"{directory}: corrupt text index: {e}") from e

    @property
    def n_docs(self) -> int:
        return int(self._core.n_docs)

    @property
    def n_terms(self) -> int:
        return int(self._core.n_terms)

    def analyze(self, text: str) -> list[str]:
        """Query tokens of ``text`` (the tokens ``search`` looks up)."""
        return analyze(text)

    def search(self, query: str, top_n: int, *, exhaustive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_n`` rows for ``query``: ``(rows int64[k], scores float32[k])``, ``k <= top_n``.

        Sorted by BM25 score descending, ties by row ascending; only rows sharing a token with the
        query are returned (``k == 0`` when no query token is in the vocabulary). MaxScore pruning
        in Rust with the GIL released; ``exhaustive=True`` scores every match instead (same result).
        Raises ``InvalidInputError`` for a bad query (see ``check_query``) or a negative ``top_n``.
        """
        check_query(query)
        return self._core.search(query, _top_n(top_n), exhaustive)

    def search_tokens(
        self, tokens: Sequence[str], top_n: int, *, exhaustive: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like ``search`` for already analysed tokens (duplicates and unknown tokens ignored)."""
        return self._core.search_terms(list(tokens), _top_n(top_n), exhaustive)

    def __repr__(self) -> str:
        return f"TextIndex(n_docs={self.n_docs}, n_terms={self.n_terms}, k1={self.k1:g}, b={self.b:g})"


def fit_token_table(
    titles: Sequence[str],
    item_vectors: np.ndarray,
    n_features: int = 2**16,
    *,
    brands: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    alpha: float = 1.0,
    alternate_sign: bool = True,
    max_iter: int = 100,
    tol: float = 1e-4,
    n_threads: int | None = None,
) -> np.ndarray:
    """Fits a hashed-token table ``float32[n_features, d]`` mapping item tokens to item vectors.

    Each item's tokens (``analyze_document``) are hashed with ``FeatureHasher(n_features,
    input_type="string", alternate_sign=alternate_sign)`` and averaged over the item's tokens,
    giving a sparse row ``a_i`` with ``a_i @ table`` equal to ``FeatureHasher.pool(..., mode="mean")``.
    The table solves the ridge least squares ``min ||A @ table - item_vectors||^2 + alpha * ||table||^2`` by
    conjugate gradients on the normal equations (CGLS), all ``d`` columns at once; it stops when
    every column's normal-equation residual falls below ``tol`` times its start, or at ``max_iter``.
    Only buckets some item token hashes to are solved for (the others are zero in the solution);
    when there are at most ``DIRECT_SOLVE_MAX_COLUMNS`` of them the normal equations are solved
    exactly instead (``max_iter`` and ``tol`` then do not apply).
    ``item_vectors`` is ``float[n, d]`` row-aligned with ``titles``. Memory: about 3 * n * d float64;
    time: two sparse products ``[n, n_features] x [n_features, d]`` per iteration.
    """
    import scipy.sparse as sp

    vectors = np.asarray(item_vectors)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise InvalidInputError(
            f"item_vectors must be a 2-d float array, got {vectors.ndim}-d {vectors.dtype}"
        )
    tokens = analyze_documents(titles, brands, categories, n_threads)
    if len(tokens) != vectors.shape[0]:
        raise InvalidInputError(f"titles has {len(tokens)} rows but item_vectors has {vectors.shape[0]}")
    if len(tokens) == 0:
        raise InvalidInputError("titles is empty; nothing to fit")
    if not alpha >= 0:
        raise InvalidInputError(f"alpha must be >= 0, got {alpha}")
    if max_iter < 1:
        raise InvalidInputError(f"max_iter must be at least 1, got {max_iter}")
    if not np.all(np.isfinite(vectors)):
        raise InvalidInputError("item_vectors contains NaN or infinite values")
    hasher = FeatureHasher(
        n_features, input_type="string", alternate_sign=alternate_sign, n_threads=n_threads
    )
    x = hasher.transform(tokens)
    n_tokens = np.array([len(t) for t in tokens], dtype=np.float64)
    a = sp.diags(1.0 / np.maximum(n_tokens, 1)) @ x  # mean over tokens, as FeatureHasher.pool(mode="mean")
    y = vectors.astype(np.float64)
    # Buckets no item token hashes to stay zero in the ridge solution: solve over the used ones only
    # (a catalogue's few thousand distinct tokens, not 2**16 buckets).
    used = np.unique(a.tocsr().indices)
    a = a.tocsr()[:, used]
    full = np.zeros((n_features, y.shape[1]), dtype=np.float32)
    if len(used) <= DIRECT_SOLVE_MAX_COLUMNS:  # small normal equations: solve them exactly
        gram = (a.T @ a).toarray() + alpha * np.eye(len(used))
        rhs = np.asarray(a.T @ y)
        try:
            solved = np.linalg.solve(gram, rhs) if alpha > 0 else np.linalg.lstsq(gram, rhs, rcond=None)[0]
        except np.linalg.LinAlgError:
            solved = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        full[used] = solved
        return full
    at = a.T.tocsr()

    table = np.zeros((len(used), y.shape[1]))
    residual = y.copy()  # y - a @ table
    gradient = at @ residual  # a.T @ residual - alpha * table
    direction = gradient.copy()
    gamma = np.einsum("ij,ij->j", gradient, gradient)
    stop = (tol**2) * gamma
    for _ in range(max_iter):
        if np.all(gamma <= stop):
            break
        q = a @ direction
        delta = np.einsum("ij,ij->j", q, q) + alpha * np.einsum("ij,ij->j", direction, direction)
        step = np.divide(gamma, delta, out=np.zeros_like(gamma), where=delta > 0)
        table += step * direction
        residual -= step * q
        gradient = at @ residual - alpha * table
        gamma_next = np.einsum("ij,ij->j", gradient, gradient)
        beta = np.divide(gamma_next, gamma, out=np.zeros_like(gamma), where=gamma > 0)
        direction = gradient + beta * direction
        gamma = gamma_next
    full[used] = table
    return full


def query_vector(query: str, table: np.ndarray, *, alternate_sign: bool = True) -> np.ndarray:
    """Item-space vector ``float32[d]`` of a query: its tokens (``analyze``) hashed and mean-pooled
    over ``table`` (``float32[n_features, d]`` from ``fit_token_table``, same ``alternate_sign``).

    All zeros when the query has no tokens. Raises ``InvalidInputError`` for a bad query.
    """
    check_query(query)
    table = np.asarray(table)
    if table.ndim != 2:
        raise InvalidInputError(f"table must be 2-d [n_features, d], got shape {table.shape}")
    tokens = analyze(query)
    if not tokens:
        return np.zeros(table.shape[1], dtype=np.float32)
    hasher = FeatureHasher(table.shape[0], input_type="string", alternate_sign=alternate_sign)
    table = np.ascontiguousarray(table, dtype=np.float32)
    return hasher.pool([tokens], table, mode="mean")[0]


def _top_n(top_n: Any) -> int:
    if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer) or top_n < 0:
        raise InvalidInputError(f"top_n must be an integer >= 0, got {top_n!r}")
    return int(top_n)


def _strings(column: Any, name: str) -> list[str]:
    values = column.tolist() if isinstance(column, np.ndarray) else list(column)
    if not all(isinstance(v, str) for v in values):
        bad = next(i for i, v in enumerate(values) if not isinstance(v, str))
        raise InvalidInputError(f"{name}[{bad}] must be a str, got {type(values[bad]).__name__}")
    return values


def _optional_strings(column: Any, name: str) -> list[str] | None:
    return None if column is None else _strings(column, name)
