"""Stage 5: the ranked page as a ``Recommendation``: ids, scores, reasons on request, the bundle
version and whether the answer is degraded (a budget ran out, or a fallback stood in)."""

from __future__ import annotations

import numpy as np

from peakrec import _core
from peakrec.pipeline.request import Request
from peakrec.pipeline.sources import (
    SOURCE_ANN,
    SOURCE_BITMAP,
    SOURCE_BM25,
    SOURCE_EXACT,
    SOURCE_FALLBACK,
    SOURCE_NEW,
    SOURCE_POPULAR,
    SOURCE_VECTOR,
)
from peakrec.pipeline.types import Recommendation

_SOURCE_NAMES = [
    (SOURCE_ANN, "ann"),
    (SOURCE_BITMAP, "filtered-ann"),
    (SOURCE_EXACT, "exact"),
    (SOURCE_NEW, "new-items"),
    (SOURCE_POPULAR, "region-popular"),
    (SOURCE_FALLBACK, "fallback"),
    (SOURCE_BM25, "bm25"),
    (SOURCE_VECTOR, "vector"),
]
_TERM_NAMES = [
    (_core.REASON_NEW, "new"),
    (_core.REASON_CAMPAIGN, "campaign"),
    (_core.REASON_MEMBER, "member"),
    (_core.REASON_CONSIDERED, "considered-category"),
    (_core.REASON_POPULAR, "popularity"),
    (_core.REASON_PRESALE, "presale"),
    (_core.REASON_RESERVED, "reserved-new-slot"),
    (_core.REASON_CAP_RELAXED, "cap-relaxed"),
]


def explain(bits: int) -> str:
    """Reason bits as text: ``"found by ann; campaign, new"``."""
    found = [name for bit, name in _SOURCE_NAMES if bits & bit]
    terms = [name for bit, name in _TERM_NAMES if bits & bit]
    text = "found by " + "+".join(found or ["?"])
    return text + ("; " + ", ".join(terms) if terms else "")


def respond(
    req: Request, out, ids: np.ndarray, version: str, cold: bool, eligible_count: int | None
) -> Recommendation:
    rows, scores, reasons, pool = out
    return Recommendation(
        ids[rows].tolist(),
        rows,
        scores,
        version,
        req.degraded,
        cold,
        [explain(int(b)) for b in reasons] if req.page.explain else None,
        pool if eligible_count is None else eligible_count,
        req.unknown_excluded,
        req.stage_seconds,
    )
