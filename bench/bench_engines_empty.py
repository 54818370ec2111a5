"""(a) of the service benchmark: the same 100-item page for every request, no work."""

from bench_engines import Empty as Recommender
from bench_engines import load_bundle

__all__ = ["Recommender", "load_bundle"]
