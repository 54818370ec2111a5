"""The one configuration schema: what ``peakrec build`` reads from ``build.toml`` and writes to a
bundle's ``config.json``, and what the server reads back from it.

Every section is a frozen dataclass whose fields are the keys, with their defaults and a one-line
meaning; ``parse`` is the only place a key is checked: an unknown key or a value of the wrong type
is refused, naming the file, the section and the key. ``build.toml`` (every section optional)::

    [ranking]                      # weights of the score (docs/ranking.md)
    new_item_boost = 0.15
    [ranking.lifecycle_weights.loyalty]
    relevance = 0.85
    [retrieval]                    # filter-aware retrieval (docs/retrieval.md)
    exact_max_rows = 30000
    [search]                       # search fusion and personalisation (docs/search.md)
    text_weight = 0.9
    [pipeline]                     # candidate sources per request kind, deadline shares
    storefront = ["ann", "new-items", "region-popular"]
    [[campaigns]]                  # build only: written to the bundle's vocab.json
    id = "double11-main"
    segments = []
    boost = 0.05
    start = 2026-10-20T00:00:00Z   # TOML datetime, ISO 8601 string or unix seconds
    end = 2026-11-12T00:00:00Z
    [coldstart]                    # build only
    [index]                        # build only
    [fallback]                     # build only
    [text]                         # build only
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peakrec.errors import InvalidInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LIFECYCLE = ("awareness", "interest", "purchase", "loyalty")
DAY = 86_400


@dataclass(frozen=True)
class StageMix:
    """Score mix of one lifecycle stage: relevance (dot product), popularity, novelty (new items)."""

    relevance: float = 1.0
    popularity: float = 0.0
    novelty: float = 0.0


def _lifecycle_weights() -> dict[str, StageMix]:
    # Awareness explores popular and new items; later stages lean on relevance.
    return {
        "awareness": StageMix(0.55, 0.3, 0.15),
        "interest": StageMix(0.7, 0.2, 0.1),
        "purchase": StageMix(0.8, 0.15, 0.05),
        "loyalty": StageMix(0.85, 0.1, 0.05),
    }


@dataclass(frozen=True)
class RankingConfig:
    """``[ranking]``: weights in units of relevance (popularity is scaled to [0, 1])."""

    new_item_window_days: float = 14.0  # an item launched within this many days is new
    new_item_boost: float = 0.15  # plus the stage's novelty weight
    new_item_reserved_share: float = 0.1  # share of each page reserved for new items
    new_item_max_share: float = 0.2  # at most this share of a page is new items (1 = no cap)
    campaign_boost: float = 0.1  # for campaigns without their own boost
    member_boost: float = 0.1  # items of brands the shopper is a member of
    loyalty_member_boost: float = 0.3  # member boost at the loyalty stage (brand-store items)
    considered_boost: float = 0.15  # purchase stage: categories of the recently viewed items
    presale_boost: float = 0.05  # presale items inside their presale window
    session_weight: float = 0.5  # blend of the recent items' mean into the query vector
    interest_session_weight: float = 0.7  # the same at the interest stage (close to recent views)
    lifecycle_weights: dict[str, StageMix] = field(default_factory=_lifecycle_weights)
    max_per_brand: int = 3  # diversity caps per page; 0 = no cap
    max_per_category: int = 5
    candidates_factor: float = 1.25  # candidates retrieved per item up to the page's end
    similar_candidates_factor: float = 4.0  # the same for SimilarItems: near items share brands
    new_candidates: int = 1024  # most recent new items considered per request
    new_candidates_top: int = 128  # ... of which the most relevant become candidates
    popular_candidates: int = 100  # region-popular items added as candidates

    def stage(self, lifecycle: str) -> StageMix:
        return self.lifecycle_weights.get(lifecycle, self.lifecycle_weights["awareness"])

    def new_slots(self, page_size: int) -> int:
        return math.floor(self.new_item_reserved_share * page_size)

    @property
    def new_window_seconds(self) -> int:
        return int(self.new_item_window_days * DAY)


@dataclass(frozen=True)
class RetrievalConfig:
    """``[retrieval]``: thresholds and breadths of filter-aware retrieval (docs/retrieval.md).
    ``ef_search`` and ``nprobe`` are measured by the build and come from the manifest's
    ``index.search_params``, not from the configuration."""

    ann_min_fraction: float = 0.05  # eligible share near the query at or above which ``ann`` is kept
    exact_max_rows: int = 30_000  # eligible count at or below which ``exact`` is used
    first_margin: float = 1.25  # the first ANN search asks for need * first_margin
    oversample: float = 1.5  # a deepened ANN search asks for need / observed share * oversample
    max_ann_depth: int = 4096  # deeper than this, switch to the bitset strategies
    bitmap_breadth_exponent: float = 0.5  # IVF bitmap search: nprobe = base / fraction ** exponent
    ann_breadth: float = 1.0  # HNSW efSearch (IVF nprobe floor) = max(ef_search, depth * ann_breadth)
    graph_min_share: float = 0.2  # HNSW graph walk kept while this share near the query is eligible
    scan_max_share: float = 0.02  # with lists: kept rows scanned below this share (from the manifest)
    lists_max_share: float = 0.3  # with lists: probed below this share, walked above (from the manifest)
    ef_search: int = 128  # from the manifest
    nprobe: int = 16  # from the manifest

    def with_search_params(
        self, search_params: dict[str, Any] | None, plan: dict[str, Any] | None = None
    ) -> RetrievalConfig:
        """These settings with the manifest's measured ``efSearch`` / ``nprobe`` and, for a bundle
        with inverted lists, the shares its build measured the plans to cross at (``lists.plan``)."""
        values: dict[str, Any] = {}
        for key, value in (search_params or {}).items():
            if key in ("efSearch", "ef_search"):
                values["ef_search"] = int(value)
            elif key == "nprobe":
                values["nprobe"] = int(value)
        for key in ("scan_max_share", "lists_max_share"):
            if plan and key in plan:
                values[key] = float(plan[key])
        return dataclasses.replace(self, **values)


@dataclass(frozen=True)
class SearchConfig:
    """``[search]``: relevance = text_weight * fused text score + (1 - text_weight) * shopper . item;
    then the storefront's business terms (campaign, member, new, presale) and these caps."""

    text_weight: float = 0.9
    rrf_k: float = 60.0  # reciprocal rank fusion constant
    bm25_weight: float = 1.0  # RRF weight of the BM25 list
    vector_weight: float = 0.3  # RRF weight of the vector list (below BM25: measured, eval search)
    candidates_factor: float = 2.0  # BM25 candidates per item up to the page's end
    min_candidates: int = 100  # at least this many BM25 candidates, so personalisation has room
    vector_candidates_factor: float = 1.25  # vector-recall candidates, as Storefront's
    min_vector_candidates: int = 40  # fixed depth for the first pages
    max_per_brand: int = 0  # 0 = no cap: a brand query wants the brand
    max_per_category: int = 0
    # Scale of the storefront's terms (new, presale, campaign, member boosts) on search's [0, 1]
    # text relevance: at 1 they cost 8 points of MRR@10 at festival time on the demo (docs/search.md).
    terms_weight: float = 0.25


SOURCE_NAMES = ("ann", "new-items", "region-popular", "text")


@dataclass(frozen=True)
class PipelineConfig:
    """``[pipeline]``: the candidate sources of each request kind (run in this order; the
    region-popular fallback answers when they find nothing or the budget is spent), and the share
    of a request's deadline budget each stage may use."""

    storefront: tuple[str, ...] = ("ann", "new-items", "region-popular")
    similar_items: tuple[str, ...] = ("ann",)
    search: tuple[str, ...] = ("text",)
    resolve_share: float = 0.15  # resolve + eligibility
    sources_share: float = 0.65  # candidate sources
    rank_share: float = 0.2  # rank + respond
    min_source_seconds: float = 0.0005  # less budget left for sources: answer with the fallback


@dataclass(frozen=True)
class ServingConfig:
    """A bundle's ``config.json``: everything the request path reads."""

    ranking: RankingConfig = field(default_factory=RankingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "config.json") -> ServingConfig:
        return parse(cls, data or {}, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


@dataclass(frozen=True)
class Campaign:
    """``[[campaigns]]``: items join campaigns through their ``campaigns`` field; the boost applies
    to shoppers in one of ``segments`` (every shopper when empty) between ``start`` and ``end``
    (unix seconds; None = open)."""

    id: str
    name: str = ""
    segments: tuple[str, ...] = ()
    boost: float | None = None  # None: ranking.campaign_boost
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class ColdstartConfig:
    n_features: int = 2**14
    alpha: float = 1.0


@dataclass(frozen=True)
class IndexConfig:
    factory: str | None = None  # None: Flat up to exact_max_items, else large_factory
    exact_max_items: int = 50_000
    # {nlist} = power of two nearest 4 sqrt(items). HNSW32 reached only ~0.5 recall@100 on the
    # clustered demo embeddings even at efSearch 512; IVF+SQ8 reaches 0.97 at a modest nprobe.
    large_factory: str = "IVF{nlist},SQ8"
    # Inverted lists for the filtered plans (docs/retrieval.md) from this many items; below, the
    # exact scan of the kept rows is cheap at every share.
    lists_min_items: int = 50_000
    hnsw_ef_construction: int = 40
    target_recall: float = 0.97  # nprobe / efSearch are raised until recall@k reaches this
    recall_queries: int = 1000
    recall_k: int = 100


@dataclass(frozen=True)
class FallbackConfig:
    per_region: int = 500  # region-popular items kept per region


@dataclass(frozen=True)
class TextConfig:
    """BM25 parameters and the hashed-token table for vector recall (docs/search.md)."""

    k1: float = 1.2
    b: float = 0.75
    n_features: int = 2**16
    alpha: float = 1.0
    max_iter: int = 30


@dataclass(frozen=True)
class BuildConfig:
    """The build-only sections of ``build.toml``."""

    campaigns: tuple[Campaign, ...] = ()
    coldstart: ColdstartConfig = field(default_factory=ColdstartConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    text: TextConfig = field(default_factory=TextConfig)


def load_settings(path: str | Path | None) -> tuple[ServingConfig, BuildConfig]:
    """``(serving, build)`` from ``build.toml`` (defaults when ``path`` is None)."""
    if path is None:
        return ServingConfig(), BuildConfig()
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path.name}: malformed TOML: {err}") from None
    serving_keys = {f.name for f in dataclasses.fields(ServingConfig)}
    serving = {k: v for k, v in data.items() if k in serving_keys}
    build = {k: v for k, v in data.items() if k not in serving_keys}
    return parse(ServingConfig, serving, path.name), parse(BuildConfig, build, path.name)


# -- the one parser ---------------------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def parse(cls: type, data: Any, where: str) -> Any:
    """``cls`` (a dataclass of this module) from ``data``: defaults for missing keys; an unknown
    key or a wrong type raises ``InvalidInputError`` naming ``where`` (file and table) and the key."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: expected a table, got {data!r}")
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - _NOT_CONFIG.get(cls, set())
    values = {}
    for key, value in data.items():
        if key not in names:
            if cls in (ServingConfig, BuildConfig):
                raise InvalidInputError(f"{where}: unknown section [{key}]")
            raise InvalidInputError(f'{where}: unknown key "{key}"')
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = parse(hint, value, f"{where} [{key}]")
        elif cls is RankingConfig and key == "lifecycle_weights":
            values[key] = _lifecycle(value, where)
        elif cls is BuildConfig and key == "campaigns":
            if not isinstance(value, list):
                raise InvalidInputError(f"{where}: [[campaigns]] must be an array of tables")
            values[key] = tuple(parse(Campaign, c, f"{where} campaign {i}") for i, c in enumerate(value, 1))
        else:
            values[key] = _value(hints[key], value, where, key)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and _required(f)]
    if missing:
        raise InvalidInputError(f'{where}: missing required key "{missing[0]}"')
    out = cls(**values)
    _check(out, where)
    return out


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


# Fields of a section that are not configuration (the manifest's measured search breadths).
_NOT_CONFIG: dict[type, set[str]] = {RetrievalConfig: {"ef_search", "nprobe"}}


def _lifecycle(value: Any, where: str) -> dict[str, StageMix]:
    """Stage mixes over the defaults: a stage or weight not given keeps its default."""
    weights = _lifecycle_weights()
    if not isinstance(value, dict):
        raise InvalidInputError(f'{where}: key "lifecycle_weights" must be a table')
    for stage, mix in value.items():
        if stage not in weights:
            raise InvalidInputError(
                f"{where}: lifecycle_weights: unknown stage {stage!r} (stages: {LIFECYCLE})"
            )
        given = parse(StageMix, mix, f"{where} [lifecycle_weights.{stage}]")
        old = weights[stage]
        weights[stage] = StageMix(
            **{f: getattr(given if f in mix else old, f) for f in ("relevance", "popularity", "novelty")}
        )
    return weights


def _value(hint: Any, value: Any, where: str, key: str) -> Any:
    def wrong(expected: str) -> InvalidInputError:
        return InvalidInputError(f'{where}: key "{key}" must be {expected}, got {value!r}')

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [o for o in typing.get_args(hint) if o is not type(None)]
        if key in ("start", "end"):
            return _timestamp(value, where, key)
        return _value(inner, value, where, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        (item,) = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return tuple(_value(item, v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    raise TypeError(f"{where}: no rule for {hint!r}")  # pragma: no cover - a schema bug


def _timestamp(value: Any, where: str, key: str) -> int:
    """Unix seconds from a TOML datetime, an ISO 8601 string or a number (UTC when no zone)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f'{where}: key "{key}" is not an ISO 8601 time: {value!r}') from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp())
    raise InvalidInputError(
        f'{where}: key "{key}" must be a time (datetime, ISO 8601 or unix seconds), got {value!r}'
    )


def _check(cfg: Any, where: str) -> None:
    """Ranges the types do not say."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise InvalidInputError(f"{where}: {message}")

    if isinstance(cfg, RankingConfig):
        for name in (
            "new_item_reserved_share",
            "new_item_max_share",
            "session_weight",
            "interest_session_weight",
        ):
            need(0 <= getattr(cfg, name) <= 1, f"{name} must be in [0, 1]")
        need(set(cfg.lifecycle_weights) <= set(LIFECYCLE), f"lifecycle_weights: stages are {LIFECYCLE}")
        need(min(cfg.max_per_brand, cfg.max_per_category) >= 0, "caps must not be negative")
        need(cfg.candidates_factor >= 1 and cfg.similar_candidates_factor >= 1, "candidate factors >= 1")
        need(cfg.new_item_window_days >= 0, "new_item_window_days must not be negative")
    elif isinstance(cfg, SearchConfig):
        need(0 <= cfg.text_weight <= 1, "text_weight must be in [0, 1]")
        need(cfg.terms_weight >= 0, "terms_weight must not be negative")
        need(cfg.rrf_k > 0 and min(cfg.bm25_weight, cfg.vector_weight) >= 0, "rrf_k > 0, weights >= 0")
    elif isinstance(cfg, PipelineConfig):
        for kind in ("storefront", "similar_items", "search"):
            unknown = set(getattr(cfg, kind)) - set(SOURCE_NAMES)
            need(not unknown, f"{kind}: unknown source {sorted(unknown)} (known: {', '.join(SOURCE_NAMES)})")
        need(
            "text" not in cfg.storefront + cfg.similar_items, 'the "text" source needs a query (search only)'
        )
        shares = (cfg.resolve_share, cfg.sources_share, cfg.rank_share)
        need(min(shares) >= 0 and abs(sum(shares) - 1) < 1e-6, "stage shares must be >= 0 and sum to 1")
    elif isinstance(cfg, Campaign):
        need(bool(cfg.id), 'missing required key "id"')
        need(cfg.start is None or cfg.end is None or cfg.start < cfg.end, "start must be before end")
    elif isinstance(cfg, BuildConfig):
        ids = [c.id for c in cfg.campaigns]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        need(not dup, f"campaign id {dup[0]!r} appears twice" if dup else "")


def to_dict(cfg: Any) -> Any:
    """JSON-ready form (what ``parse`` reads back): dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        fields = dataclasses.fields(cfg)
        out = {f.name: to_dict(getattr(cfg, f.name)) for f in fields}
        if isinstance(cfg, RetrievalConfig):
            out.pop("ef_search"), out.pop("nprobe")
        return out
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg
