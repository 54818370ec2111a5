"""Build settings: ranking/retrieval weights written to the bundle's ``config.json``, plus the
build-only sections of ``build.toml`` (campaigns, cold start, index, fallback).

``build.toml`` (every section optional; keys not given keep the defaults below)::

    [ranking]
    new_item_boost = 0.2
    [ranking.lifecycle_weights.loyalty]
    relevance = 0.7
    [retrieval]
    oversample = 4
    [[campaigns]]
    id = "c99-free-shipping"
    name = "9.9 包邮 free shipping"
    segments = ["small-town-active-youth", "free-shipping-hunter"]
    boost = 0.3
    [coldstart]
    n_features = 16384
    alpha = 1.0
    [index]
    factory = "HNSW32,Flat"
    target_recall = 0.98
    [fallback]
    per_region = 500
    [text]
    k1 = 1.2
    b = 0.75
    [search]
    text_weight = 0.9
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

from peakrec.errors import InvalidInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG: dict[str, Any] = {
    "ranking": {
        # New-product incubation: items launched within the window get a boost and reserved slots.
        "new_item_window_days": 14,
        "new_item_boost": 0.15,
        "new_item_reserved_share": 0.1,
        # Campaigns without their own boost use this one (only for shoppers in a targeted segment).
        "campaign_boost": 0.1,
        "member_boost": 0.1,  # items of brands the shopper is a member of
        "presale_boost": 0.05,  # presale items inside their window
        "popularity_transform": "log1p",
        # Score mix per lifecycle stage: relevance (dot product), popularity, novelty (new items).
        "lifecycle_weights": {
            "awareness": {"relevance": 0.55, "popularity": 0.3, "novelty": 0.15},
            "interest": {"relevance": 0.7, "popularity": 0.2, "novelty": 0.1},
            "purchase": {"relevance": 0.8, "popularity": 0.15, "novelty": 0.05},
            "loyalty": {"relevance": 0.85, "popularity": 0.1, "novelty": 0.05},
        },
        # Diversity: at most this many items of one brand / one leaf category per page.
        "max_per_brand": 3,
        "max_per_category": 5,
    },
    "retrieval": {
        "oversample": 4,  # ANN asks for page_size * oversample, deepened up to max_oversample
        "max_oversample": 64,
        "filtered_search_below": 0.05,  # eligible share under which IDSelectorBitmap search is used
        "exact_scan_below": 30000,  # eligible count under which the eligible rows are scanned exactly
        "session_weight": 0.5,  # blend of recent items into the query vector
        "text_weight": 0.5,  # search: BM25 score vs vector score
    },
    "search": {
        # Relevance of a search result = text_weight * fused text score (RRF, scaled to [0, 1])
        # + (1 - text_weight) * the shopper's dot product with the item (personalisation).
        "text_weight": 0.9,
        "rrf_k": 60.0,  # reciprocal rank fusion constant
        "bm25_weight": 1.0,  # RRF weight of the BM25 list
        "vector_weight": 0.3,  # RRF weight of the vector-recall list (below BM25: measured)
        "candidates_factor": 2.0,  # BM25 candidates per item up to the page's end (at least 100)
        "vector_candidates_factor": 1.25,  # vector-recall candidates, as Storefront's (at least 40)
        "max_per_brand": 0,  # diversity caps of search pages (0 = none: a brand query wants the brand)
        "max_per_category": 0,
    },
}

DEFAULT_BUILD: dict[str, Any] = {
    "campaigns": [],
    "coldstart": {"n_features": 2**14, "alpha": 1.0},
    "index": {
        "factory": None,  # None: Flat up to exact_max_items, else large_factory
        "exact_max_items": 50000,
        # {nlist} = power of two nearest 4 sqrt(items). HNSW32 reached only ~0.5 recall@100 on the
        # clustered demo embeddings even at efSearch 512; IVF+SQ8 reaches 0.97 at a modest nprobe.
        "large_factory": "IVF{nlist},SQ8",
        "hnsw_ef_construction": 40,
        "target_recall": 0.97,  # nprobe / efSearch are raised until recall@k reaches this
        "recall_queries": 1000,
        "recall_k": 100,
    },
    "fallback": {"per_region": 500},
    # Search: BM25 parameters and the hashed-token table for vector recall (docs/search.md).
    "text": {"k1": 1.2, "b": 0.75, "n_features": 2**16, "alpha": 1.0, "max_iter": 30},
}


def load_settings(path: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns ``(config, build)``: the bundle's config.json content and the build-only settings,
    defaults overridden by ``build.toml``. Unknown keys and wrong types are errors."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    build = copy.deepcopy(DEFAULT_BUILD)
    if path is None:
        return config, build
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path.name}: malformed TOML: {err}") from None
    for section, value in data.items():
        if section in config:
            _merge(config[section], value, f"{path.name} [{section}]")
        elif section == "campaigns":
            build["campaigns"] = _campaigns(value, path.name)
        elif section in build:
            _merge(build[section], value, f"{path.name} [{section}]")
        else:
            raise InvalidInputError(f"{path.name}: unknown section [{section}]")
    return config, build


def _merge(into: dict[str, Any], value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: expected a table")
    for key, v in value.items():
        if key not in into:
            raise InvalidInputError(f'{where}: unknown key "{key}"')
        old = into[key]
        if isinstance(old, dict):
            _merge(old, v, f"{where}.{key}")
        elif old is None or isinstance(v, type(old)) or (isinstance(old, float) and isinstance(v, int)):
            if isinstance(v, bool) != isinstance(old, bool) and old is not None:
                raise InvalidInputError(f'{where}: key "{key}" must be {type(old).__name__}, got {v!r}')
            into[key] = float(v) if isinstance(old, float) else v
        else:
            raise InvalidInputError(f'{where}: key "{key}" must be {type(old).__name__}, got {v!r}')


def _campaigns(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidInputError(f"{name}: [[campaigns]] must be an array of tables")
    out = []
    for i, c in enumerate(value, start=1):
        where = f"{name} campaign {i}"
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not c["id"]:
            raise InvalidInputError(f'{where}: missing required key "id"')
        unknown = set(c) - {"id", "name", "segments", "boost"}
        if unknown:
            raise InvalidInputError(f'{where}: unknown key "{sorted(unknown)[0]}"')
        segments = c.get("segments", [])
        if not isinstance(segments, list) or not all(isinstance(s, str) for s in segments):
            raise InvalidInputError(f'{where}: "segments" must be a list of strings')
        boost = c.get("boost")
        if boost is not None and (isinstance(boost, bool) or not isinstance(boost, (int, float))):
            raise InvalidInputError(f'{where}: "boost" must be a number')
        out.append({"id": c["id"], "name": c.get("name", c["id"]), "segments": segments, "boost": boost})
    return out
