"""(b) of the service benchmark: a bare FAISS search for the shopper's vector."""

from bench_engines import FaissOnly, load_bundle
from peakrec.service.worker import Engine

ENGINE = Engine(load_bundle, FaissOnly)
