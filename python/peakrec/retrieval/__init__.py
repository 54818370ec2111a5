"""Retrieval: FAISS index choice, filter-aware search, text recall."""
