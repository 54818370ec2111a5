"""What one worker process serves: the live bundle, its request path and its shared item state, and
the hot swap from one bundle to the next.

The live ``Live`` tuple is replaced by one attribute assignment, so a request that has read it keeps
its bundle to the end while new requests get the new one. Workers learn of a new bundle from the
``CURRENT`` file (written by ``ReloadIndex`` or by an operator) and report what they serve in
``STATE_DIR/workers/<index>.json``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peakrec.bundle.manifest import read_current, write_current
from peakrec.errors import BundleError, InvalidInputError, NotFoundError
from peakrec.pipeline.types import RequestPath
from peakrec.service.interceptors import Unavailable
from peakrec.service.statefile import SharedItemState
from peakrec.state import ItemState

__all__ = ["Engine", "Live", "Worker", "engine_named", "read_current", "write_current"]

log = logging.getLogger("peakrec.service")


@dataclass(frozen=True)
class Engine:
    """What a worker serves bundles with: ``load_bundle(path)`` loads and verifies one, and
    ``recommender(bundle, state)`` builds its request path over the live item state."""

    load_bundle: Callable[[Path], Any]
    recommender: Callable[[Any, ItemState], RequestPath]


def engine_named(name: str) -> Engine:
    """``peakrec``'s own engine, or the ``ENGINE`` of module ``name`` (test and benchmark
    stand-ins, chosen with ``peakrec serve --engine``)."""
    if name == "peakrec":
        from peakrec.bundle.load import load_bundle
        from peakrec.pipeline.recommender import Recommender

        return Engine(load_bundle, Recommender)
    engine = getattr(importlib.import_module(name), "ENGINE", None)
    if not isinstance(engine, Engine):
        raise TypeError(f"--engine {name}: the module defines no ENGINE = peakrec.service.worker.Engine(...)")
    return engine


@dataclass(frozen=True)
class Live:
    version: str
    bundle: Any
    recommender: RequestPath
    items: SharedItemState


class Worker:
    """Loads bundles through ``engine`` (an :class:`Engine`, or the name ``engine_named`` takes;
    normally peakrec's own) and keeps one of them live."""

    def __init__(
        self,
        bundles_dir: Path,
        state_dir: Path,
        engine: Engine | str = "peakrec",
        index: int = 0,
        workers: int = 1,
        poll_seconds: float = 0.25,
    ):
        self.bundles_dir = Path(bundles_dir)
        self.state_dir = Path(state_dir)
        self.engine = engine_named(engine) if isinstance(engine, str) else engine
        self.index = index
        self.workers = workers
        self.poll_seconds = poll_seconds
        self.live: Live | None = None
        self.last_error = ""
        self._failed: set[str] = set()
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        (self.state_dir / "workers").mkdir(parents=True, exist_ok=True)

    # -- serving -------------------------------------------------------------------------------------
    def current(self) -> Live:
        """The live bundle, its item state brought up to the latest acknowledged update."""
        live = self.live
        if live is None:
            raise Unavailable("no bundle loaded yet")
        live.items.refresh()
        return live

    # -- loading and swapping ------------------------------------------------------------------------
    def load(self, version: str) -> Live:
        """Loads and verifies ``version`` beside the live bundle; does not make it live."""
        path = self.bundles_dir / version
        if not version or "/" in version or version.startswith("."):
            raise InvalidInputError(f"version: {version!r} is not a bundle directory name")
        if not path.is_dir():
            raise NotFoundError(f"version: no bundle {version!r} in {self.bundles_dir}")
        started = time.perf_counter()
        try:
            bundle = self.engine.load_bundle(path)
        except (BundleError, NotFoundError, InvalidInputError):
            raise
        except Exception as err:  # a corrupt file can fail in numpy or FAISS, not only in our checks
            raise BundleError(f"bundle {version}: {type(err).__name__}: {err}") from err
        items = SharedItemState(self.state_dir, bundle)
        recommender = self.engine.recommender(bundle, items.state)
        log.info("worker %d loaded %s in %.2fs", self.index, version, time.perf_counter() - started)
        return Live(version=bundle.version, bundle=bundle, recommender=recommender, items=items)

    def swap_to(self, version: str) -> Live:
        """Makes ``version`` live (loading it if needed). A bundle that fails to load is refused with
        ``BundleError`` and the old one keeps serving."""
        with self._swap_lock:
            live = self.live
            if live is not None and version in (live.version, live.bundle.path.name):
                return live
            try:
                new = self.load(version)
            except Exception as err:
                self.last_error = f"{version}: {err}"
                self._failed.add(version)
                self.report()
                raise
            self.live = new
            self.last_error = ""
            self._failed.discard(version)
            from peakrec.service import metrics

            if live is not None:
                metrics.BUNDLE.labels(live.version).set(0)  # its mapping goes with the last request on it
                if live.version != new.version:
                    live.items.unlink()
            metrics.BUNDLE.labels(new.version).set(1)
            self.report()
            return new

    def follow_current(self) -> None:
        """Swaps to what CURRENT names, unless that bundle already failed to load."""
        try:
            version = read_current(self.bundles_dir)
        except Exception as err:
            self.last_error = str(err)
            return
        live = self.live
        if live is not None and version in (live.version, live.bundle.path.name):
            return
        if version in self._failed:
            return
        try:
            self.swap_to(version)
        except Exception as err:
            log.error("worker %d refused bundle %s: %s", self.index, version, err)

    def start_watching(self) -> None:
        def watch() -> None:
            while not self._stop.wait(self.poll_seconds):
                self.follow_current()

        self._watcher = threading.Thread(target=watch, name="peakrec-current-watcher", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()

    # -- status shared with the supervisor and the admin API -----------------------------------------
    def report(self, ready: bool = True) -> None:
        live = self.live
        status = {
            "index": self.index,
            "pid": os.getpid(),
            "bundle_version": live.version if live else "",
            "bundle_dir": live.bundle.path.name if live else "",
            "last_error": self.last_error,
            "ready": ready and live is not None,
        }
        path = self.state_dir / "workers" / f"{self.index}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, path)

    def statuses(self) -> list[dict[str, Any]]:
        out = []
        for i in range(self.workers):
            try:
                out.append(json.loads((self.state_dir / "workers" / f"{i}.json").read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                out.append({"index": i, "pid": 0, "bundle_version": "", "last_error": "not started"})
        return out

    def wait_all_on(self, version: str, timeout: float) -> list[dict[str, Any]]:
        """Waits until every worker reports ``version`` (by name or directory); returns the statuses."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            if all(version in (s.get("bundle_version"), s.get("bundle_dir")) for s in statuses):
                return statuses
            if time.monotonic() >= deadline:
                lagging = [
                    s for s in statuses if version not in (s.get("bundle_version"), s.get("bundle_dir"))
                ]
                detail = "; ".join(
                    f"worker {s['index']}: {s.get('last_error') or 'loading'}" for s in lagging
                )
                raise Unavailable(f"version: not every worker serves {version} after {timeout:g}s ({detail})")
            time.sleep(0.05)
