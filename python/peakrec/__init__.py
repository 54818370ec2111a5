"""peakrec: a recommendation serving core for festival peaks."""

from peakrec import errors
from peakrec.bundle import Bundle, build_bundle, load_bundle
from peakrec.features import FeatureHasher
from peakrec.pipeline.recommender import Recommender

__all__ = ["Bundle", "FeatureHasher", "Recommender", "build_bundle", "errors", "load_bundle"]
__version__ = "0.1.0"
