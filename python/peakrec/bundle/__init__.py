"""Bundles: build (offline), verify and load (read-only, memory-mapped)."""

from peakrec.bundle.load import Bundle, ItemColumns, UserColumns, load_bundle
from peakrec.bundle.verify import verify_bundle

__all__ = ["Bundle", "ItemColumns", "UserColumns", "build_bundle", "load_bundle", "verify_bundle"]


def __getattr__(name: str):  # build pulls in scipy and tqdm: serving workers never import it
    if name == "build_bundle":
        from peakrec.bundle.build import build_bundle

        return build_bundle
    raise AttributeError(f"module 'peakrec.bundle' has no attribute {name!r}")
