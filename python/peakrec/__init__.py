"""peakrec: a recommendation serving core for festival peaks."""

from peakrec import errors
from peakrec.features import FeatureHasher
from peakrec.pipeline.recommender import Recommender

__all__ = ["FeatureHasher", "Recommender", "errors"]
__version__ = "0.1.0"
