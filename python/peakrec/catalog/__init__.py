"""Catalogue input: record schema and checks, JSONL/Parquet readers, the demo-data generator."""

from peakrec.catalog.readers import read_items, read_users
from peakrec.catalog.regions import REGION_CODES

__all__ = ["REGION_CODES", "read_items", "read_users"]
