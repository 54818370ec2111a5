"""The real request path (`peakrec.Recommender`) over `synthetic` (tests/synthetic.py) catalogues, for
service tests and benchmarks that need real ranking without a bundle build: a bundle directory holds
`synthetic.json` ({"n_items", "n_users", "seed", "factory"}) and `load_bundle` makes the arrays."""

from __future__ import annotations

import json
from pathlib import Path

from peakrec.bundle.manifest import write_current
from peakrec.errors import BundleError
from peakrec.pipeline.recommender import Recommender
from peakrec.service.worker import Engine
from synthetic import synthetic_bundle

__all__ = ["ENGINE", "load_bundle", "write_bundle"]


def write_bundle(bundles: Path, version: str, current: bool = True, **params: object) -> Path:
    path = bundles / version
    path.mkdir(parents=True)
    (path / "synthetic.json").write_text(json.dumps({"n_items": 3000, "n_users": 300, "seed": 7, **params}))
    if current:
        write_current(bundles, version)
    return path


def load_bundle(path: Path):
    path = Path(path)
    try:
        params = json.loads((path / "synthetic.json").read_text())
    except (OSError, ValueError) as err:
        raise BundleError(f"{path}: unreadable synthetic.json: {err}") from err
    bundle = synthetic_bundle(
        n_items=params["n_items"],
        n_users=params["n_users"],
        seed=params["seed"],
        index_factory=params.get("factory", "Flat"),
    )
    bundle.path = path
    bundle.version = path.name
    bundle.manifest["version"] = path.name
    return bundle


ENGINE = Engine(load_bundle, Recommender)
