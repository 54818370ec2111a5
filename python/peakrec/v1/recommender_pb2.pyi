from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Shopper(_message.Message):
    __slots__ = ("user_id", "region", "context", "recent_items", "exclude_items", "member_brands", "vector")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_BRANDS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    region: str
    context: _containers.ScalarMap[str, str]
    recent_items: _containers.RepeatedScalarFieldContainer[str]
    exclude_items: _containers.RepeatedScalarFieldContainer[str]
    member_brands: _containers.RepeatedScalarFieldContainer[str]
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, user_id: _Optional[str] = ..., region: _Optional[str] = ..., context: _Optional[_Mapping[str, str]] = ..., recent_items: _Optional[_Iterable[str]] = ..., exclude_items: _Optional[_Iterable[str]] = ..., member_brands: _Optional[_Iterable[str]] = ..., vector: _Optional[_Iterable[float]] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("brands_allow", "brands_block", "categories_allow", "categories_block", "price_min", "price_max")
    BRANDS_ALLOW_FIELD_NUMBER: _ClassVar[int]
    BRANDS_BLOCK_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_ALLOW_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_BLOCK_FIELD_NUMBER: _ClassVar[int]
    PRICE_MIN_FIELD_NUMBER: _ClassVar[int]
    PRICE_MAX_FIELD_NUMBER: _ClassVar[int]
    brands_allow: _containers.RepeatedScalarFieldContainer[str]
    brands_block: _containers.RepeatedScalarFieldContainer[str]
    categories_allow: _containers.RepeatedScalarFieldContainer[str]
    categories_block: _containers.RepeatedScalarFieldContainer[str]
    price_min: float
    price_max: float
    def __init__(self, brands_allow: _Optional[_Iterable[str]] = ..., brands_block: _Optional[_Iterable[str]] = ..., categories_allow: _Optional[_Iterable[str]] = ..., categories_block: _Optional[_Iterable[str]] = ..., price_min: _Optional[float] = ..., price_max: _Optional[float] = ...) -> None: ...

class PageRequest(_message.Message):
    __slots__ = ("page_size", "page", "explain", "with_details", "now")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    WITH_DETAILS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page: int
    explain: bool
    with_details: bool
    now: float
    def __init__(self, page_size: _Optional[int] = ..., page: _Optional[int] = ..., explain: _Optional[bool] = ..., with_details: _Optional[bool] = ..., now: _Optional[float] = ...) -> None: ...

class StorefrontRequest(_message.Message):
    __slots__ = ("shopper", "filters", "page")
    SHOPPER_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    shopper: Shopper
    filters: Filters
    page: PageRequest
    def __init__(self, shopper: _Optional[_Union[Shopper, _Mapping]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., page: _Optional[_Union[PageRequest, _Mapping]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "shopper", "filters", "page")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    query: str
    shopper: Shopper
    filters: Filters
    page: PageRequest
    def __init__(self, query: _Optional[str] = ..., shopper: _Optional[_Union[Shopper, _Mapping]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., page: _Optional[_Union[PageRequest, _Mapping]] = ...) -> None: ...

class SimilarItemsRequest(_message.Message):
    __slots__ = ("item_id", "shopper", "filters", "page")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    shopper: Shopper
    filters: Filters
    page: PageRequest
    def __init__(self, item_id: _Optional[str] = ..., shopper: _Optional[_Union[Shopper, _Mapping]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., page: _Optional[_Union[PageRequest, _Mapping]] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("item_ids", "scores", "reasons", "bundle_version", "degraded", "cold", "eligible_count", "titles", "brands", "prices")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    bundle_version: str
    degraded: bool
    cold: bool
    eligible_count: int
    titles: _containers.RepeatedScalarFieldContainer[str]
    brands: _containers.RepeatedScalarFieldContainer[str]
    prices: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., reasons: _Optional[_Iterable[str]] = ..., bundle_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., cold: _Optional[bool] = ..., eligible_count: _Optional[int] = ..., titles: _Optional[_Iterable[str]] = ..., brands: _Optional[_Iterable[str]] = ..., prices: _Optional[_Iterable[float]] = ...) -> None: ...

class ItemUpdate(_message.Message):
    __slots__ = ("item_id", "stock", "price", "available")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    stock: int
    price: float
    available: bool
    def __init__(self, item_id: _Optional[str] = ..., stock: _Optional[int] = ..., price: _Optional[float] = ..., available: _Optional[bool] = ...) -> None: ...

class UpdateItemsRequest(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[ItemUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[ItemUpdate, _Mapping]]] = ...) -> None: ...

class UpdateItemsResponse(_message.Message):
    __slots__ = ("applied", "journal_seq")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_SEQ_FIELD_NUMBER: _ClassVar[int]
    applied: int
    journal_seq: int
    def __init__(self, applied: _Optional[int] = ..., journal_seq: _Optional[int] = ...) -> None: ...

class ReloadIndexRequest(_message.Message):
    __slots__ = ("version", "wait_seconds")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    wait_seconds: float
    def __init__(self, version: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("index", "pid", "bundle_version", "last_error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    pid: int
    bundle_version: str
    last_error: str
    def __init__(self, index: _Optional[int] = ..., pid: _Optional[int] = ..., bundle_version: _Optional[str] = ..., last_error: _Optional[str] = ...) -> None: ...

class ReloadIndexResponse(_message.Message):
    __slots__ = ("bundle_version", "workers")
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    bundle_version: str
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, bundle_version: _Optional[str] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class IndexInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IndexInfoResponse(_message.Message):
    __slots__ = ("bundle_version", "manifest_json", "items", "users", "answered_by", "workers", "journal_seq")
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_SEQ_FIELD_NUMBER: _ClassVar[int]
    bundle_version: str
    manifest_json: str
    items: int
    users: int
    answered_by: WorkerInfo
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    journal_seq: int
    def __init__(self, bundle_version: _Optional[str] = ..., manifest_json: _Optional[str] = ..., items: _Optional[int] = ..., users: _Optional[int] = ..., answered_by: _Optional[_Union[WorkerInfo, _Mapping]] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., journal_seq: _Optional[int] = ...) -> None: ...
