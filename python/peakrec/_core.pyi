"""Type stubs of the Rust extension ``peakrec._core``."""

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

def hash_csr(
    raw_x: Iterable[Any],
    n_features: int,
    input_type: str,
    alternate_sign: bool,
    float32: bool = False,
    n_threads: int | None = None,
) -> tuple[np.ndarray, npt.NDArray[np.int32], np.ndarray]: ...
def hash_flat_csr(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    row_indptr: npt.NDArray[np.int64],
    n_features: int,
    alternate_sign: bool,
    values: npt.NDArray[np.float64] | None = None,
    float32: bool = False,
    n_threads: int | None = None,
) -> tuple[np.ndarray, npt.NDArray[np.int32], np.ndarray]: ...
def hash_pool(
    raw_x: Iterable[Any],
    n_features: int,
    input_type: str,
    alternate_sign: bool,
    table: npt.NDArray[np.float32],
    mode: str = "sum",
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def murmurhash3_32(key: str | bytes, seed: int = 0, positive: bool = False) -> int: ...

# Text search (rust/py_text.rs). Array dtypes as in peakrec.retrieval.text.ARRAY_DTYPES.
def text_analyze(text: str) -> list[str]: ...
def text_analyze_document(title: str, brand: str = "", category: str = "") -> list[str]: ...
def text_analyze_batch(
    titles: list[str],
    brands: list[str] | None = None,
    categories: list[str] | None = None,
    n_threads: int | None = None,
) -> list[list[str]]: ...
def text_check_query(query: str) -> None: ...
def text_build(
    titles: list[str],
    brands: list[str] | None = None,
    categories: list[str] | None = None,
    k1: float = 1.2,
    b: float = 0.75,
    n_threads: int | None = None,
) -> tuple[dict[str, np.ndarray], float]: ...

class TextIndexCore:
    def __init__(
        self,
        vocab_bytes: npt.NDArray[np.uint8],
        vocab_offsets: npt.NDArray[np.int64],
        postings_indptr: npt.NDArray[np.int64],
        postings_docs: npt.NDArray[np.int32],
        postings_tf: npt.NDArray[np.uint16],
        doc_row: npt.NDArray[np.int32],
        doc_norm: npt.NDArray[np.float32],
        term_idf: npt.NDArray[np.float32],
        term_max_score: npt.NDArray[np.float32],
        block_indptr: npt.NDArray[np.int64],
        block_max_score: npt.NDArray[np.float32],
        k1: float,
        verify: bool = False,
    ) -> None: ...
    def search(
        self, query: str, top_n: int, exhaustive: bool = False
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def search_terms(
        self, terms: list[str], top_n: int, exhaustive: bool = False
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def term_id(self, term: str) -> int | None: ...
    @property
    def n_docs(self) -> int: ...
    @property
    def n_terms(self) -> int: ...
    @property
    def n_postings(self) -> int: ...
    @property
    def k1(self) -> float: ...
