"""Retrieval: index choice and filter-aware vector search (``search``); text recall lives beside it."""

from peakrec.config import RetrievalConfig
from peakrec.retrieval.search import Retrieved, exact_search, retrieve

__all__ = ["RetrievalConfig", "Retrieved", "exact_search", "retrieve"]
