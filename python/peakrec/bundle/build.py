"""``build_bundle``: catalogue files in, one verified, immutable bundle directory out.

Steps: read and check the records, encode the columns, build and measure the FAISS index, fit the
cold-start table, compute region-popular fallbacks, write everything into a temporary directory
inside BUNDLES_DIR, fsync, rename it to its version, and point ``CURRENT`` at it. Any failure or
interruption removes the temporary directory and leaves ``CURRENT`` as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from peakrec import _core
from peakrec.bundle import coldstart
from peakrec.bundle.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    fsync_path,
    sha256_file,
    write_current,
    write_json,
    write_npy,
)
from peakrec.bundle.search import write_search_files
from peakrec.catalog.readers import read_items, read_users
from peakrec.catalog.regions import REGION_CODES
from peakrec.catalog.schema import LIFECYCLE, ItemTable, UserTable, expand_regions
from peakrec.config import load_settings, to_dict
from peakrec.errors import BundleError, InvalidInputError
from peakrec.retrieval.hnsw import half_vectors
from peakrec.retrieval.lists import ItemLists, build_lists, measure_factors
from peakrec.retrieval.lists import save as save_lists
from peakrec.retrieval.plan import measure_plan

TMP_PREFIX = ".tmp-build-"
MAX_CAMPAIGNS = 64
MAX_SEGMENTS = 64

# A stand-in for the search files (tests): text_builder(titles <U[n], out_dir).
TextBuilder = Callable[[np.ndarray, Path], None]


def build_bundle(
    items: str | Path,
    users: str | Path,
    out: str | Path,
    *,
    item_vectors: str | Path | None = None,
    user_vectors: str | Path | None = None,
    config: str | Path | None = None,
    index_factory: str | None = None,
    min_recall: float | None = None,
    text_builder: TextBuilder | None = None,
    progress: bool = True,
) -> Path:
    """Builds a bundle from catalogue files into ``out`` (BUNDLES_DIR) and makes it CURRENT.

    ``items``/``users``: JSONL or Parquet records; ``item_vectors``/``user_vectors``: optional
    row-aligned ``.npy`` float matrices (else the ``embedding`` fields). ``config``: build.toml.
    ``index_factory`` overrides the automatic FAISS index choice; ``min_recall`` fails the build
    (nothing published) when recall@k against exact search is below it. Returns the bundle path.
    Raises :class:`InvalidInputError` for bad input and :class:`BundleError` for a failed build.
    """
    started = time.monotonic()
    out = Path(out)
    serving, build_config = load_settings(config)
    settings = to_dict(build_config)  # plain dicts for the steps below
    if index_factory:
        settings["index"]["factory"] = index_factory
    steps: dict[str, float] = {}
    bar = _bars(progress, steps)

    with bar("read items", unit="item") as p:
        item_table = read_items(items, item_vectors, progress=p)
    dim = int(item_table.vectors.shape[1])
    lists = None
    if len(item_table) >= settings["index"]["lists_min_items"]:
        with bar("inverted lists", total=1, unit="step") as p:
            # Rows are numbered list by list from here on: a list is a range of rows.
            centroids, offsets, order = build_lists(
                np.ascontiguousarray(item_table.vectors, dtype=np.float32)
            )
            item_table = item_table.reordered(order)
            lists = centroids, offsets
            p.update(1)
    with bar("read users", unit="user") as p:
        user_table = read_users(users, user_vectors, dimension=dim, progress=p)

    with bar("encode columns", total=2, unit="table") as p:
        vocab = _vocab(item_table, user_table, settings["campaigns"], serving.ranking.campaign_boost)
        columns = _item_columns(item_table, vocab)
        p.update(1)
        user_columns, dropped = _user_columns(user_table, vocab, columns["ids_sorted"], columns["ids_order"])
        p.update(1)

    factory = settings["index"]["factory"] or choose_factory(len(item_table), settings["index"])
    index = _build_index(item_table.vectors, factory, settings["index"], bar)
    with bar("recall check", total=1, unit="step") as p:
        warm_vectors = user_table.vectors[user_table.has_vector.astype(bool)]
        search_params, recall = tune_search(
            index,
            item_table.vectors,
            warm_vectors,
            settings["index"]["target_recall"],
            k=settings["index"]["recall_k"],
            n_queries=settings["index"]["recall_queries"],
        )
        p.update(1)
    if min_recall is not None and recall["recall_at_k"] < min_recall:
        raise BundleError(
            f"recall@{recall['k']} = {recall['recall_at_k']:.4f} with {factory} {search_params} is below "
            f"--min-recall {min_recall}; nothing published (try another --index-factory)"
        )

    # The walk's half-precision vectors (None for other indexes): written to the bundle, and read
    # by the scan and the probe whose plan is measured here.
    half = half_vectors(index)
    if lists is not None:
        with bar("plan", total=2, unit="step") as p:
            lists_info = _measure_lists(
                lists, index, half, item_table.vectors, warm_vectors, search_params, serving, settings, p
            )

    with bar("cold start", total=1, unit="fit") as p:
        warm = np.flatnonzero(user_table.has_vector)
        rows = [user_columns["_hashed"][i] for i in warm]
        fit = coldstart.fit_table(
            rows,
            user_table.vectors[warm],
            settings["coldstart"]["n_features"],
            settings["coldstart"]["alpha"],
        )
        p.update(1)
    with bar("region fallback", total=1, unit="step") as p:
        fallback = region_popular(
            columns["regions"], columns["popularity"], columns["stock"], settings["fallback"]["per_region"]
        )
        p.update(1)

    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(out)
    tmp = out / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(3).hex()}"
    tmp.mkdir()
    try:
        arrays = {f"items/{k}.npy": v for k, v in columns.items()}
        arrays["items/vectors.npy"] = item_table.vectors
        arrays.update({f"users/{k}.npy": v for k, v in user_columns.items() if not k.startswith("_")})
        arrays["users/vectors.npy"] = user_table.vectors
        arrays["users/has_vector.npy"] = user_table.has_vector
        arrays["coldstart/table.npy"] = fit.table
        arrays["fallback/region_popular.npy"] = fallback
        text_info: dict[str, Any] = {}
        with bar("write", total=len(arrays) + 2, unit="file") as p:
            for rel, array in arrays.items():
                write_npy(tmp / rel, array)
                p.update(1)
            _write_index(index, tmp / "index.faiss")
            if lists is not None:
                save_lists(tmp / "lists", *lists, write_npy)
            if half is not None:
                write_npy(tmp / "index_half.npy", half)
            p.update(1)
            (tmp / "text").mkdir()
            if text_builder is not None:
                text_builder(columns["titles"], tmp / "text")
            else:
                text_info = write_search_files(
                    columns["titles"],
                    np.asarray(vocab["brands"], dtype=str)[columns["brand"]],
                    np.asarray(vocab["categories"], dtype=str)[columns["category"]],
                    item_table.vectors,
                    settings["text"],
                    tmp / "text",
                )
            write_json(tmp / "config.json", serving.to_dict())
            write_json(tmp / "vocab.json", vocab)
            p.update(1)
        files = {}
        hashing = time.monotonic()
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            files[file.relative_to(tmp).as_posix()] = sha256_file(file)
            fsync_path(file)  # ours are synced already; this covers files the text builder wrote
        for d in sorted({p for p in tmp.rglob("*") if p.is_dir()} | {tmp}, reverse=True):
            fsync_path(d)
        steps["checksum"] = round(time.monotonic() - hashing, 2)
        digest = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in files.items()).encode()).hexdigest()
        now = datetime.now(timezone.utc)
        version = f"{now:%Y%m%dT%H%M%SZ}-{digest[:6]}"
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "version": version,
            "created_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "counts": {
                "items": len(item_table),
                "users": len(user_table),
                "users_with_vector": int(user_table.has_vector.sum()),
                "regions": len(vocab["regions"]),
                "brands": len(vocab["brands"]),
                "categories": len(vocab["categories"]),
                "segments": len(vocab["segments"]),
                "campaigns": len(vocab["campaigns"]),
                **dropped,
            },
            "dimension": dim,
            "metric": "inner_product",
            "index": {"factory": factory, "search_params": search_params, "ntotal": int(index.ntotal)},
            "recall": recall,
            **({"lists": lists_info} if lists is not None else {}),
            "coldstart": {
                "n_features": settings["coldstart"]["n_features"],
                "input_type": "string",
                "alternate_sign": True,
                "pooling": "mean",
                "alpha": settings["coldstart"]["alpha"],
                "features": ["region", "segment", "lifecycle", "member", "context key=value"],
                **fit.stats,
            },
            "fallback": {"per_region": int(fallback.shape[1])},
            "text": text_info,
            "inputs": _inputs(
                items=items, users=users, item_vectors=item_vectors, user_vectors=user_vectors, config=config
            ),
            "build": {
                "seconds": round(time.monotonic() - started, 1),
                "steps_seconds": steps,
                "faiss": faiss.__version__,
            },
            "files": files,
        }
        write_json(tmp / MANIFEST, manifest)
        fsync_path(tmp)
        final = out / version
        if final.exists():
            raise BundleError(f"{final} already exists")
        os.rename(tmp, final)
        fsync_path(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_current(out, version)
    return final


def _measure_lists(
    lists, index, half, vectors, queries, search_params, serving, settings, progress
) -> dict[str, Any]:
    """How deep to probe the inverted lists ``(centroids, offsets)`` for the build's recall target,
    and where the plans cross on this index (``retrieval.lists``, ``retrieval.plan``): the
    manifest's ``lists`` entry."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    core_lists = _core.InvertedLists(*lists, n)
    xq, _source = sample_queries(vectors, queries, 64)
    k = min(settings["index"]["recall_k"], n // 50)
    target = settings["index"]["target_recall"]
    factors = measure_factors(core_lists, vectors, xq, k, target)
    progress.update(1)
    config = serving.retrieval.with_search_params(search_params)
    item_lists = ItemLists(core_lists, tuple(factors))
    plan = measure_plan(index, vectors, item_lists, xq[:32], k, config, target, half=half)
    progress.update(1)
    return {"count": len(core_lists), "k": k, "target": target, "factors": factors, "plan": plan}


def choose_factory(n: int, params: dict[str, Any]) -> str:
    """Exact search up to ``exact_max_items``; beyond, ``large_factory`` with ``{nlist}`` set to the
    power of two nearest 4 sqrt(n) (IVF4096 at 1M items)."""
    if n <= params["exact_max_items"]:
        return "Flat"
    nlist = int(2 ** np.clip(np.round(np.log2(4 * np.sqrt(n))), 8, 16))
    return str(params["large_factory"]).replace("{nlist}", str(nlist))


def sample_queries(vectors: np.ndarray, queries: np.ndarray, n_queries: int) -> tuple[np.ndarray, str]:
    """float32 [q, d]: up to ``n_queries`` rows of ``queries`` (seeded), or of ``vectors`` when empty."""
    source = "users"
    if len(queries) == 0:
        queries, source = vectors, "items"
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(queries), size=min(n_queries, len(queries)), replace=False))
    return np.ascontiguousarray(queries[sample], dtype=np.float32), source


def measure_recall(
    index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int = 100, n_queries: int = 1000
) -> dict[str, Any]:
    """recall@k of ``index`` (as configured) against exact inner-product search over ``vectors``
    (float32 [n, d]), on up to ``n_queries`` sampled rows of ``queries`` (items when empty)."""
    xq, source = sample_queries(vectors, queries, n_queries)
    k = min(k, len(vectors))
    _, exact = faiss.knn(xq, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    _, approx = index.search(xq, k)
    return {
        "k": int(k),
        "queries": int(len(xq)),
        "query_source": source,
        "recall_at_k": round(recall_at_k(approx, exact), 4),
    }


def tune_search(
    index: faiss.Index,
    vectors: np.ndarray,
    queries: np.ndarray,
    target: float,
    k: int = 100,
    n_queries: int = 1000,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Raises the search effort (IVF ``nprobe``, HNSW ``efSearch``) step by step until recall@k
    against exact search reaches ``target`` or the effort is maxed out; leaves the index set to it.
    Returns ``(search_params, recall)``."""
    xq, source = sample_queries(vectors, queries, n_queries)
    k = min(k, len(vectors))
    _, exact = faiss.knn(xq, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    ivf, hnsw = faiss.try_extract_index_ivf(index), _hnsw(index)
    if ivf is not None:
        name, steps, obj = "nprobe", [v for v in (8, 16, 32, 64, 128, 256, 512) if v <= ivf.nlist], ivf
    elif hnsw is not None:
        name, steps, obj = "efSearch", [max(k, v) for v in (64, 128, 256, 512, 1024)], hnsw
    else:
        name, steps, obj = "", [0], None
    for value in steps or [getattr(obj, name, 0)]:
        if obj is not None:
            setattr(obj, name, value)
        _, approx = index.search(xq, k)
        recall = recall_at_k(approx, exact)
        if recall >= target:
            break
    params = {name: int(getattr(obj, name))} if obj is not None else {}
    return params, {
        "k": int(k),
        "queries": int(len(xq)),
        "query_source": source,
        "recall_at_k": round(recall, 4),
        "target": target,
    }


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |approx_i ∩ exact_i| / k; int64 [q, k] each, -1 = no result."""
    hits = (approx[:, :, None] == exact[:, None, :]) & (approx[:, :, None] >= 0)
    return float(hits.any(axis=2).sum(axis=1).mean() / exact.shape[1])


def region_popular(
    regions: np.ndarray, popularity: np.ndarray, stock: np.ndarray, per_region: int
) -> np.ndarray:
    """int32 [R, K]: per region, in-stock item rows sellable there by popularity (desc), -1 padded."""
    n_regions = len(REGION_CODES)
    k = min(per_region, len(popularity))
    out = np.full((n_regions, k), -1, dtype=np.int32)
    order = np.lexsort((np.arange(len(popularity)), -popularity.astype(np.float64)))
    order = order[stock[order] > 0]
    words = regions[order]
    for r in range(n_regions):
        sellable = order[(words[:, r // 64] >> np.uint64(r % 64)) & np.uint64(1) == 1][:k]
        out[r, : len(sellable)] = sellable
    return out


def _vocab(items: ItemTable, users: UserTable, campaigns: list[dict[str, Any]], default_boost: float) -> dict:
    known = {c["id"] for c in campaigns}
    extra = sorted({c for cs in items.campaigns for c in cs} - known)
    all_campaigns = [{**c, "name": c["name"] or c["id"]} for c in campaigns] + [
        {"id": c, "name": c, "segments": [], "boost": None, "start": None, "end": None} for c in extra
    ]
    for c in all_campaigns:
        if c["boost"] is None:
            c["boost"] = default_boost
    if len(all_campaigns) > MAX_CAMPAIGNS:
        raise InvalidInputError(
            f"{items.where.name}: {len(all_campaigns)} campaigns, at most {MAX_CAMPAIGNS}"
        )
    segments = sorted(
        {s for ss in users.segments for s in ss} | {s for c in all_campaigns for s in c["segments"]}
    )
    if len(segments) > MAX_SEGMENTS:
        raise InvalidInputError(
            f"{users.where.name}: {len(segments)} audience segments, at most {MAX_SEGMENTS}"
        )
    return {
        "regions": list(REGION_CODES),
        "brands": sorted(set(items.brand)),
        "categories": sorted(set(items.category)),
        "segments": segments,
        "lifecycle": list(LIFECYCLE),
        "campaigns": all_campaigns,
    }


def _codes(values: list[str], vocab: list[str], dtype: Any) -> np.ndarray:
    """Index of each value in the (sorted, unique) vocabulary."""
    return np.searchsorted(np.asarray(vocab), np.asarray(values)).astype(dtype)


def _item_columns(items: ItemTable, vocab: dict) -> dict[str, np.ndarray]:
    n = len(items)
    ids = np.asarray(items.item_id)
    order = np.argsort(ids, kind="stable")
    region_bit = {code: i for i, code in enumerate(vocab["regions"])}
    words = (len(region_bit) + 63) // 64
    regions = np.zeros((n, words), dtype=np.uint64)
    cache: dict[tuple[str, ...], np.ndarray] = {}
    for row, codes in enumerate(items.regions):
        key = tuple(codes)
        mask = cache.get(key)
        if mask is None:
            mask = np.zeros(words, dtype=np.uint64)
            for code in expand_regions(codes):
                bit = region_bit[code]
                mask[bit // 64] |= np.uint64(1) << np.uint64(bit % 64)
            cache[key] = mask
        regions[row] = mask
    campaign_bit = {c["id"]: i for i, c in enumerate(vocab["campaigns"])}
    campaigns = np.zeros(n, dtype=np.uint64)
    for row, cs in enumerate(items.campaigns):
        for c in cs:
            campaigns[row] |= np.uint64(1) << np.uint64(campaign_bit[c])
    return {
        "ids": ids,
        "ids_sorted": ids[order],
        "ids_order": order.astype(np.int64),
        "titles": np.asarray(items.title),
        "brand": _codes(items.brand, vocab["brands"], np.int32),
        "category": _codes(items.category, vocab["categories"], np.int32),
        "price": np.asarray(items.price, dtype=np.float32),
        "stock": np.asarray(items.stock, dtype=np.int32),
        "regions": regions,
        "launch_ts": np.asarray(items.launch_ts, dtype=np.int64),
        "presale_start": np.asarray(items.presale_start, dtype=np.int64),
        "presale_end": np.asarray(items.presale_end, dtype=np.int64),
        "member_only": np.asarray(items.member_only, dtype=np.uint8),
        "campaigns": campaigns,
        "popularity": np.asarray(items.popularity, dtype=np.float32),
    }


def _csr(lists: list[list[Any]], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=indptr[1:])
    flat = [v for x in lists for v in x]
    return indptr, (np.asarray(flat, dtype=dtype) if flat else np.zeros(0, dtype=dtype))


def _user_columns(
    users: UserTable, vocab: dict, item_ids_sorted: np.ndarray, item_ids_order: np.ndarray
) -> tuple[dict[str, Any], dict[str, int]]:
    m = len(users)
    ids = np.asarray(users.user_id, dtype=str)
    order = np.argsort(ids, kind="stable")
    region_index = {code: i for i, code in enumerate(vocab["regions"])}
    segment_bit = {s: i for i, s in enumerate(vocab["segments"])}
    segments = np.zeros(m, dtype=np.uint64)
    for row, ss in enumerate(users.segments):
        for s in ss:
            segments[row] |= np.uint64(1) << np.uint64(segment_bit[s])
    lifecycle_index = {s: i for i, s in enumerate(vocab["lifecycle"])}
    brand_index = {b: i for i, b in enumerate(vocab["brands"])}
    members = [[brand_index[b] for b in bs if b in brand_index] for bs in users.memberships]
    dropped_members = sum(len(bs) for bs in users.memberships) - sum(len(b) for b in members)
    m_indptr, m_flat = _csr(members, np.int32)
    p_indptr, p_ids = _csr(users.purchased, str)
    pos = np.searchsorted(item_ids_sorted, p_ids) if len(p_ids) else np.zeros(0, np.int64)
    pos = np.minimum(pos, len(item_ids_sorted) - 1)
    known = item_ids_sorted[pos] == p_ids if len(p_ids) else np.zeros(0, bool)
    rows = item_ids_order[pos].astype(np.int32)
    # Known purchases per user (bincount: reduceat fails when the last users have no purchases).
    owner = np.repeat(np.arange(m), np.diff(p_indptr))
    kept = np.bincount(owner, weights=known, minlength=m).astype(np.int64)
    p_indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(kept, out=p_indptr[1:])
    hashed = [
        coldstart.user_features(
            users.region[i], users.segments[i], users.lifecycle[i], users.memberships[i], users.features[i]
        )
        for i in range(m)
    ]
    f_indptr, f_flat = _csr(hashed, str)
    columns = {
        "ids": ids,
        "ids_sorted": ids[order],
        "ids_order": order.astype(np.int64),
        "region": np.asarray([region_index[r] for r in users.region], dtype=np.int16),
        "segments": segments,
        "lifecycle": np.asarray([lifecycle_index[s] for s in users.lifecycle], dtype=np.uint8),
        "memberships_indptr": m_indptr,
        "memberships": m_flat,
        "purchased_indptr": p_indptr,
        "purchased": rows[known],
        "features_indptr": f_indptr,
        "features": f_flat,
        "_hashed": hashed,
    }
    dropped = {"purchases_unknown_item": int((~known).sum()), "memberships_unknown_brand": dropped_members}
    return columns, dropped


def _build_index(
    vectors: np.ndarray, factory: str, params: dict[str, Any], bar: Callable[..., Any]
) -> faiss.Index:
    n, d = vectors.shape
    try:
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise InvalidInputError(
            f'index factory "{factory}" is not valid for dimension {d}: {str(err).strip().splitlines()[-1]}'
        ) from None
    hnsw = _hnsw(index)
    if hnsw is not None:
        hnsw.efConstruction = params["hnsw_ef_construction"]
    if not index.is_trained:
        with bar("train index", total=1, unit="step") as p:
            ivf = faiss.try_extract_index_ivf(index)
            size = min(n, 40 * ivf.nlist if ivf is not None else 100_000)
            if ivf is not None:
                ivf.cp.niter = 10  # k-means: 10 rounds cost a quarter of the default 25, same recall here
            sample = np.sort(np.random.default_rng(0).choice(n, size=size, replace=False))
            try:
                index.train(np.ascontiguousarray(vectors[sample]))
            except RuntimeError as err:
                raise InvalidInputError(
                    f'index factory "{factory}" cannot be trained on {n} items: '
                    f"{str(err).strip().splitlines()[-1]}"
                ) from None
            p.update(1)
    step = 50_000
    with bar("index items", total=n, unit="item") as p:
        for start in range(0, n, step):
            index.add(np.ascontiguousarray(vectors[start : start + step]))
            p.update(min(step, n - start))
    return index


def _hnsw(index: faiss.Index) -> Any:
    for candidate in (index, getattr(faiss.try_extract_index_ivf(index), "quantizer", None)):
        if candidate is not None and hasattr(faiss.downcast_index(candidate), "hnsw"):
            return faiss.downcast_index(candidate).hnsw
    return None


def _write_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _inputs(**paths: str | Path | None) -> dict[str, Any]:
    out = {}
    for name, path in paths.items():
        if path is not None:
            p = Path(path)
            out[name] = {"path": str(p.resolve()), "sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def _remove_stale_tmp(out: Path) -> None:
    """Removes temporary directories left by builds that were killed (their process is gone)."""
    for tmp in out.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int(tmp.name[len(TMP_PREFIX) :].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def _bars(enabled: bool, seconds: dict[str, float]) -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """A progress bar per step that also records the step's wall time into ``seconds``."""

    @contextlib.contextmanager
    def bar(desc: str, **kw: Any) -> Iterator[Any]:
        started = time.monotonic()
        with tqdm(desc=desc, disable=not enabled, leave=False, dynamic_ncols=True, **kw) as p:
            yield p
        seconds[desc] = round(time.monotonic() - started, 2)

    return bar
