"""Retrieval: index choice and filter-aware vector search (``search``); text recall lives beside it."""

from peakrec.retrieval.search import RetrievalConfig, Retrieved, exact_search, retrieve

__all__ = ["RetrievalConfig", "Retrieved", "exact_search", "retrieve"]
