"""peakrec: a recommendation serving core for festival peaks."""

from peakrec import errors
from peakrec.features import FeatureHasher

__all__ = ["FeatureHasher", "errors"]
__version__ = "0.1.0"
