"""peakrec's filtered search over a FAISS ``IndexHNSWFlat`` graph (``_core.hnsw_search``).

The graph and vectors are FAISS's own arrays, viewed in place (no copy; memory-mapped when the
index was read with ``IO_FLAG_MMAP``). The walk is FAISS's; eligibility is checked only for the
nodes close enough to enter the results (see ``rust/core/src/hnsw.rs``).
"""

from __future__ import annotations

import faiss
import numpy as np

from peakrec import _core
from peakrec.errors import InvalidInputError


def graph_of(index: faiss.Index, half: bool | np.ndarray = True) -> _core.HnswGraph | None:
    """The graph of ``index`` when it is an HNSW over flat inner-product or L2 storage, else None.
    The views share FAISS's memory: keep ``index`` alive as long as the graph.

    ``half``: the walk reads a half-precision copy of the vectors (2 bytes a value), half the
    memory traffic of FAISS's walk; the rows it returns are ordered and scored in full precision.
    ``True`` makes the copy here (see ``half_vectors``); an array is a copy made before, e.g. a
    bundle's ``index_half.npy``, memory-mapped so that workers share it. Without it, or when the
    values do not fit half precision well, the walk reads the vectors themselves and is FAISS's
    exactly (tests/test_hnsw.py)."""
    real = _hnsw_flat(index)
    if real is None:
        return None
    hnsw, n, d = real.hnsw, real.ntotal, real.d
    vectors = _vectors(real)
    if half is True:
        half = _half(vectors, n, d)
    elif half is False:
        half = None
    elif half.dtype != np.uint16 or half.shape != (n, d) or not half.flags.c_contiguous:
        raise InvalidInputError(
            f"half-precision vectors must be C-contiguous uint16 [{n}, {d}] to match the index, "
            f"got {half.dtype} {list(half.shape)}{'' if half.flags.c_contiguous else ' (not C-contiguous)'}"
        )
    return _core.HnswGraph(
        _bytes(_view(hnsw.neighbors.data(), hnsw.neighbors.size())),
        _bytes(_view(hnsw.offsets.data(), hnsw.offsets.size())),
        faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int32),
        _bytes(_view(hnsw.levels.data(), hnsw.levels.size())),
        _bytes(vectors),
        d,
        half,
        int(hnsw.entry_point),
        int(hnsw.max_level),
        real.metric_type == faiss.METRIC_INNER_PRODUCT,
    )


def half_vectors(index: faiss.Index) -> np.ndarray | None:
    """``uint16 [n, d]``: the bits of the float16 copy of an HNSW-over-flat index's vectors that the
    walk reads, in the index's row order; None when ``index`` has no such graph or its values do not
    fit half precision well (largest magnitude outside 1e-2..6e4)."""
    real = _hnsw_flat(index)
    if real is None:
        return None
    return _half(_vectors(real), real.ntotal, real.d)


def _hnsw_flat(index: faiss.Index) -> faiss.IndexHNSW | None:
    """``index`` as an ``IndexHNSW`` over flat inner-product or L2 storage with vectors, else None."""
    real = faiss.downcast_index(index)
    if not isinstance(real, faiss.IndexHNSW) or real.ntotal == 0:
        return None
    storage = faiss.downcast_index(real.storage)
    metric = real.metric_type
    if type(storage) not in (faiss.IndexFlat, faiss.IndexFlatIP, faiss.IndexFlatL2):
        return None
    if metric not in (faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2) or storage.metric_type != metric:
        return None
    return real


def _vectors(real: faiss.IndexHNSW) -> np.ndarray:
    """The flat storage's vectors, in place (``n * d`` float32)."""
    return _view(faiss.downcast_index(real.storage).get_xb(), real.ntotal * real.d)


def _half(vectors: np.ndarray, n: int, d: int) -> np.ndarray | None:
    if not 1e-2 <= float(np.abs(vectors).max()) <= 6e4:
        return None
    return vectors.astype(np.float16).view(np.uint16).reshape(n, d)


def _view(pointer, size: int) -> np.ndarray:
    """A read-only view of FAISS's array (an index read with ``IO_FLAG_MMAP`` maps its arrays at
    whatever byte offset the file gives them, so it may be unaligned for its type)."""
    array = faiss.rev_swig_ptr(pointer, size)
    array.flags.writeable = False
    return array


def _bytes(array: np.ndarray) -> np.ndarray:
    """``array``'s bytes, still in place: the walk reads values at any alignment."""
    return array.view(np.uint8)
