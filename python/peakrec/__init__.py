"""peakrec: a recommendation serving core for festival peaks."""

from typing import TYPE_CHECKING, Any

from peakrec import errors
from peakrec.bundle.load import Bundle, load_bundle
from peakrec.features import FeatureHasher
from peakrec.pipeline.recommender import Recommender

if TYPE_CHECKING:
    from peakrec.bundle.build import build_bundle
    from peakrec.service.client import Client, ItemUpdate

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
    # Imported only when asked for: the gRPC client pulls in grpcio, build_bundle scipy and tqdm
    # (serving workers never import it).
    if name in ("Client", "ItemUpdate"):
        from peakrec.service import client

        return getattr(client, name)
    if name == "build_bundle":
        from peakrec.bundle.build import build_bundle

        return build_bundle
    raise AttributeError(f"module 'peakrec' has no attribute {name!r}")
