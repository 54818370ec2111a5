"""(b) of the service benchmark: a bare FAISS search for the shopper's vector."""

from bench_engines import FaissOnly as Recommender
from bench_engines import load_bundle

__all__ = ["Recommender", "load_bundle"]
