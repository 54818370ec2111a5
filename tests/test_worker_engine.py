"""What a worker serves with: a typed Engine (peakrec's own, or a test stand-in's ENGINE), and
CURRENT read and written by one helper."""

from __future__ import annotations

import pytest
from peakrec.bundle.manifest import read_current, resolve, write_current
from peakrec.errors import BundleError, NotFoundError
from peakrec.pipeline.recommender import Recommender
from peakrec.service.worker import Engine, engine_named


def test_peakrec_engine_is_the_real_request_path():
    engine = engine_named("peakrec")
    assert isinstance(engine, Engine) and engine.recommender is Recommender


def test_stand_in_engines_name_their_engine():
    import fake_engine

    assert engine_named("fake_engine") is fake_engine.ENGINE


def test_a_module_without_an_engine_is_refused_naming_it():
    with pytest.raises(TypeError, match="--engine reference: the module defines no ENGINE"):
        engine_named("reference")


def test_current_is_written_and_read_by_one_helper(tmp_path):
    with pytest.raises(NotFoundError, match="CURRENT: missing"):
        read_current(tmp_path)
    write_current(tmp_path, "v1")
    assert read_current(tmp_path) == "v1" and (tmp_path / "CURRENT").read_text() == "v1\n"
    (tmp_path / "v1").mkdir()
    assert resolve(tmp_path) == tmp_path / "v1"
    (tmp_path / "CURRENT").write_text("\n")
    with pytest.raises(BundleError, match="CURRENT: empty"):
        read_current(tmp_path)
