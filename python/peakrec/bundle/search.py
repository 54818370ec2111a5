"""The bundle's search files: the BM25 text index and the hashed-token table for vector recall.

``text/`` holds the index of ``peakrec.retrieval.text.TextIndex`` (titles + brand + category path,
k1/b from ``build.toml [text]``) and ``text/token_table.npy`` (float32 ``[n_features, d]``), fitted
from every item's document tokens to its embedding. Both are row-aligned with ``items/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

TOKEN_TABLE = "token_table.npy"


def write_search_files(
    titles: np.ndarray,
    brands: np.ndarray,
    categories: np.ndarray,
    item_vectors: np.ndarray,
    settings: dict[str, Any],
    directory: Path,
) -> dict[str, Any]:
    """Builds and saves the text index and token table into ``directory``; returns the manifest's
    ``text`` entry (parameters and timings). ``titles``/``brands``/``categories``: str per item row."""
    from peakrec.bundle.manifest import write_npy
    from peakrec.retrieval.text import ANALYZER, TextIndex, fit_token_table

    started = time.monotonic()
    index = TextIndex.build(titles, brands, categories, k1=settings["k1"], b=settings["b"])
    index.save(directory)
    index_seconds = time.monotonic() - started
    table = fit_token_table(
        titles,
        item_vectors,
        int(settings["n_features"]),
        brands=brands,
        categories=categories,
        alpha=float(settings["alpha"]),
        max_iter=int(settings["max_iter"]),
    )
    write_npy(directory / TOKEN_TABLE, table)
    return {
        "analyzer": ANALYZER,
        "k1": index.k1,
        "b": index.b,
        "terms": index.n_terms,
        "postings": int(index.meta["n_postings"]),
        "token_table": {
            "file": f"text/{TOKEN_TABLE}",
            "n_features": int(settings["n_features"]),
            "input_type": "string",
            "alternate_sign": True,
            "pooling": "mean",
            "alpha": float(settings["alpha"]),
            "max_iter": int(settings["max_iter"]),
        },
        "seconds": {
            "index": round(index_seconds, 2),
            "token_table": round(time.monotonic() - started - index_seconds, 2),
        },
    }
