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
