"""Type stubs of the Rust extension ``peakrec._core``."""

from collections.abc import Iterable
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "hash_csr",
    "hash_flat_csr",
    "hash_pool",
    "murmurhash3_32",
    "text_analyze",
    "text_analyze_document",
    "text_analyze_batch",
    "text_check_query",
    "text_build",
    "TextIndexCore",
    "Catalog",
    "Rules",
    "RankParams",
    "bitset_rows",
    "bitset_and_count",
    "REASON_NEW",
    "REASON_CAMPAIGN",
    "REASON_MEMBER",
    "REASON_CONSIDERED",
    "REASON_POPULAR",
    "REASON_RESERVED",
    "REASON_CAP_RELAXED",
    "REASON_PRESALE",
    "HnswGraph",
    "hnsw_search",
    "InvertedLists",
    "probe_lists",
]

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

@final
class TextIndexCore:
    def __new__(
        cls,
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
    ) -> TextIndexCore: ...
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

# Reason bits of Catalog.rank (the low 8 bits are the caller's source bits).
REASON_NEW: int
REASON_CAMPAIGN: int
REASON_MEMBER: int
REASON_CONSIDERED: int
REASON_POPULAR: int
REASON_RESERVED: int
REASON_CAP_RELAXED: int
REASON_PRESALE: int

@final
class Rules:
    """One request's restrictions plus the live item state (stock, price, available) it reads.
    The live-state arrays must be aligned and C-contiguous: they are read with atomic loads."""

    def __new__(
        cls,
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
    ) -> Rules: ...

@final
class RankParams:
    """Weights and caps of one kind of page, built once per bundle (see Catalog.rank)."""

    def __new__(
        cls,
        *,
        relevance_weight: float = 1.0,
        popularity_weight: float = 0.0,
        new_boost: float = 0.0,
        new_window: int = 0,
        new_reserved_share: float = 0.0,
        new_max_share: float = 1.0,
        presale_boost: float = 0.0,
        member_boost: float = 0.0,
        considered_boost: float = 0.0,
        max_per_brand: int = 0,
        max_per_category: int = 0,
        pool_factor: float = 0.0,
        limited_sources: int = 0,
    ) -> RankParams: ...
    @property
    def relevance_weight(self) -> float: ...
    @property
    def popularity_weight(self) -> float: ...
    @property
    def new_boost(self) -> float: ...
    @property
    def new_window(self) -> int: ...
    @property
    def new_reserved_share(self) -> float: ...
    @property
    def new_max_share(self) -> float: ...
    @property
    def presale_boost(self) -> float: ...
    @property
    def member_boost(self) -> float: ...
    @property
    def considered_boost(self) -> float: ...
    @property
    def max_per_brand(self) -> int: ...
    @property
    def max_per_category(self) -> int: ...
    @property
    def pool_factor(self) -> float: ...
    @property
    def limited_sources(self) -> int: ...

@final
class Catalog:
    """A bundle's item columns, row-aligned; arrays are borrowed zero-copy on every call."""

    def __new__(
        cls,
        brand: npt.NDArray[np.int32],
        category: npt.NDArray[np.int32],
        regions: npt.NDArray[np.uint64],
        launch_ts: npt.NDArray[np.int64],
        presale_start: npt.NDArray[np.int64],
        presale_end: npt.NDArray[np.int64],
        member_only: npt.NDArray[np.uint8],
        campaigns: npt.NDArray[np.uint64],
        popularity: npt.NDArray[np.float32],
    ) -> Catalog: ...
    def __len__(self) -> int: ...
    def eligible(self, rules: Rules) -> tuple[npt.NDArray[np.uint64], int]: ...
    def sample_fraction(self, rules: Rules, samples: int = 2048) -> float: ...
    def check_rows(self, rules: Rules, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]: ...
    def scan_kept(
        self,
        rules: Rules,
        vectors: npt.NDArray[np.float32],
        kept: npt.NDArray[np.uint64],
        query: npt.NDArray[np.float32],
        k: int,
        also: npt.NDArray[np.uint64] | None = None,
        half: npt.NDArray[np.uint16] | None = None,
        summary: npt.NDArray[np.uint64] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def rank(
        self,
        rules: Rules | None,
        rows: npt.NDArray[np.int64],
        relevance: npt.NDArray[np.float32],
        sources: npt.NDArray[np.uint8],
        params: RankParams,
        *,
        page: int,
        page_size: int,
        now: int,
        campaign_boost: npt.NDArray[np.float32] | None = None,
        member_brands: npt.NDArray[np.uint8] | None = None,
        considered_categories: npt.NDArray[np.uint8] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.uint32], int]: ...

def bitset_rows(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]: ...
def bitset_and_count(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> int: ...

# Filtered HNSW search over a FAISS index's own arrays (rust/py_ann.rs, peakrec.retrieval.hnsw).
@final
class HnswGraph:
    def __new__(
        cls,
        neighbors: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.uint8],
        cum_neighbors: npt.NDArray[np.int32],
        levels: npt.NDArray[np.uint8],
        vectors: npt.NDArray[np.uint8],
        dim: int,
        half: npt.NDArray[np.uint16] | None,
        entry_point: int,
        max_level: int,
        inner_product: bool,
    ) -> HnswGraph: ...
    def __len__(self) -> int: ...

def hnsw_search(
    graph: HnswGraph,
    catalog: Catalog,
    rules: Rules | None,
    query: npt.NDArray[np.float32],
    k: int,
    ef: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], int, int, int]: ...

# Filter-aware inverted lists (rust/py_ann.rs, peakrec.retrieval.lists).
@final
class InvertedLists:
    def __new__(
        cls,
        centroids: npt.NDArray[np.float32],
        offsets: npt.NDArray[np.int64],
        n: int,
    ) -> InvertedLists: ...
    def __len__(self) -> int: ...

def probe_lists(
    lists: InvertedLists,
    catalog: Catalog,
    rules: Rules,
    vectors: npt.NDArray[np.float32],
    kept: npt.NDArray[np.uint64],
    query: npt.NDArray[np.float32],
    k: int,
    min_scored: int,
    max_tested: int,
    also: npt.NDArray[np.uint64] | None = None,
    half: npt.NDArray[np.uint16] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None: ...
