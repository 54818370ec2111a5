"""(a) of the service benchmark: the same 100-item page for every request, no work."""

from bench_engines import Empty, load_bundle
from peakrec.service.worker import Engine

ENGINE = Engine(load_bundle, Empty)
