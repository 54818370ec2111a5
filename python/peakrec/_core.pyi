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

REASON_NEW: int
REASON_CAMPAIGN: int
REASON_MEMBER: int
REASON_CONSIDERED: int
REASON_POPULAR: int
REASON_RESERVED: int
REASON_CAP_RELAXED: int

class Rules:
    """One request's restrictions plus the live item state (stock, price, available) it reads."""

    def __init__(
        self,
        stock: npt.NDArray[np.int32],
        price: npt.NDArray[np.float32],
        available: npt.NDArray[np.uint8],
        region: int,
        now: int,
        price_min: float = ...,
        price_max: float = ...,
        brand_ok: npt.NDArray[np.uint8] | None = None,
        category_ok: npt.NDArray[np.uint8] | None = None,
        member_brands: npt.NDArray[np.uint8] | None = None,
        excluded: npt.NDArray[np.int64] | None = None,
    ) -> None: ...

class Catalog:
    """A bundle's item columns, row-aligned; arrays are borrowed zero-copy on every call."""

    def __init__(
        self,
        brand: npt.NDArray[np.int32],
        category: npt.NDArray[np.int32],
        regions: npt.NDArray[np.uint64],
        launch_ts: npt.NDArray[np.int64],
        presale_start: npt.NDArray[np.int64],
        presale_end: npt.NDArray[np.int64],
        member_only: npt.NDArray[np.uint8],
        campaigns: npt.NDArray[np.uint64],
        popularity: npt.NDArray[np.float32],
    ) -> None: ...
    def __len__(self) -> int: ...
    def eligible(self, rules: Rules) -> tuple[npt.NDArray[np.uint64], int]: ...
    def sample_fraction(self, rules: Rules, samples: int = 2048) -> float: ...
    def check_rows(self, rules: Rules, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]: ...
    def rank(
        self,
        rules: Rules | None,
        rows: npt.NDArray[np.int64],
        relevance: npt.NDArray[np.float32],
        sources: npt.NDArray[np.uint8],
        *,
        page: int,
        page_size: int,
        now: int,
        relevance_weight: float = 1.0,
        popularity_weight: float = 0.0,
        new_boost: float = 0.0,
        new_window: int = 0,
        new_slots: int = 0,
        campaign_boost: npt.NDArray[np.float32] | None = None,
        member_boost: float = 0.0,
        considered_boost: float = 0.0,
        max_per_brand: int = 0,
        max_per_category: int = 0,
        member_brands: npt.NDArray[np.uint8] | None = None,
        considered_categories: npt.NDArray[np.uint8] | None = None,
        pool_per_page: float = 0.0,
        limited_sources: int = 0,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.uint32], int]: ...

def bitset_rows(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]: ...

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
