"""peakrec: a recommendation serving core for festival peaks."""

from typing import Any

from peakrec import errors
from peakrec.bundle import Bundle, build_bundle, load_bundle
from peakrec.features import FeatureHasher
from peakrec.pipeline.recommender import Recommender

__all__ = [
    "Bundle",
    "Client",
    "FeatureHasher",
    "ItemUpdate",
    "Recommender",
    "build_bundle",
    "errors",
    "load_bundle",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The gRPC client pulls in grpcio; import it only when asked for.
    if name in ("Client", "ItemUpdate"):
        from peakrec.service import client

        return getattr(client, name)
    raise AttributeError(f"module 'peakrec' has no attribute {name!r}")
