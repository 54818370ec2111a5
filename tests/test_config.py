"""The one configuration schema (``peakrec.config``): what build.toml may say, what config.json
holds, and that the server reads back exactly what the build wrote."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import peakrec
import pytest
from conftest import demo_inputs
from peakrec.config import (
    BuildConfig,
    RankingConfig,
    ServingConfig,
    StageMix,
    load_settings,
    to_dict,
)
from peakrec.errors import InvalidInputError


def _settings(tmp_path: Path, text: str) -> tuple[ServingConfig, BuildConfig]:
    path = tmp_path / "build.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def test_defaults_round_trip_through_json():
    cfg = ServingConfig()
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ServingConfig.from_dict(data) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ranking]\npopularity_transform = 'log1p'\n", '[ranking]: unknown key "popularity_transform"'),
        ("[retrieval]\nmax_oversample = 64\n", '[retrieval]: unknown key "max_oversample"'),
        ("[retrieval]\ntext_weight = 0.5\n", '[retrieval]: unknown key "text_weight"'),
        ("[retrieval]\nnprobe = 8\n", '[retrieval]: unknown key "nprobe"'),  # measured, in the manifest
        ("[rankng]\nx = 1\n", "unknown section [rankng]"),
        ("[ranking]\nmax_per_brand = 2.5\n", 'key "max_per_brand" must be an integer'),
        ("[ranking]\nmember_boost = true\n", 'key "member_boost" must be a finite number'),
        ("[ranking]\nnew_item_max_share = 1.5\n", "new_item_max_share must be in [0, 1]"),
        ("[ranking.lifecycle_weights.dormant]\nrelevance = 1\n", "unknown stage 'dormant'"),
        ("[pipeline]\nstorefront = ['ann', 'bestsellers']\n", "unknown source ['bestsellers']"),
        ("[pipeline]\nstorefront = ['text']\n", 'the "text" source needs a query'),
        ("[[campaigns]]\nname = 'x'\n", 'campaign 1: missing required key "id"'),
        (
            "[[campaigns]]\nid = 'x'\nstart = 2026-11-12T00:00:00Z\nend = 2026-11-11T00:00:00Z\n",
            "start must be",
        ),
        ("[[campaigns]]\nid = 'x'\nstart = 'soon'\n", 'key "start" is not an ISO 8601 time'),
        ("[[campaigns]]\nid = 'x'\n[[campaigns]]\nid = 'x'\n", "campaign id 'x' appears twice"),
    ],
)
def test_build_toml_refuses_unknown_keys_and_bad_values(tmp_path, text, message):
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _settings(tmp_path, text)


def test_documented_knobs_are_accepted(tmp_path):
    serving, _ = _settings(
        tmp_path,
        "[ranking]\nloyalty_member_boost = 0.4\nconsidered_boost = 0.2\ninterest_session_weight = 0.6\n"
        "presale_boost = 0.07\n[retrieval]\noversample = 2.0\n",
    )
    r = serving.ranking
    assert (r.loyalty_member_boost, r.considered_boost, r.interest_session_weight) == (0.4, 0.2, 0.6)
    assert r.presale_boost == 0.07 and serving.retrieval.oversample == 2.0


def test_a_partial_lifecycle_mix_keeps_the_other_defaults(tmp_path):
    serving, _ = _settings(tmp_path, "[ranking.lifecycle_weights.loyalty]\nrelevance = 0.6\n")
    default = RankingConfig().lifecycle_weights
    assert serving.ranking.lifecycle_weights["loyalty"] == StageMix(0.6, default["loyalty"].popularity, 0.05)
    assert serving.ranking.lifecycle_weights["awareness"] == default["awareness"]


def test_campaign_times_take_datetimes_iso_strings_and_unix_seconds(tmp_path):
    _, build = _settings(
        tmp_path,
        "[[campaigns]]\nid = 'a'\nstart = 2026-11-10T16:00:00Z\nend = '2026-11-11T16:00:00+00:00'\n"
        "[[campaigns]]\nid = 'b'\nstart = 1700000000\n",
    )
    a, b = build.campaigns
    assert a.start == int(dt.datetime(2026, 11, 10, 16, tzinfo=dt.timezone.utc).timestamp())
    assert a.end - a.start == 86_400
    assert (b.start, b.end) == (1_700_000_000, None)


def test_the_server_reads_back_what_the_build_wrote(demo_dir, tmp_path):
    config = tmp_path / "build.toml"
    config.write_text(
        (demo_dir / "build.toml").read_text(encoding="utf-8")
        + "\n[ranking]\nnew_item_max_share = 0.2\nloyalty_member_boost = 0.25\n"
        "[pipeline]\nstorefront = ['ann', 'new-items']\n",
        encoding="utf-8",
    )
    serving, build = load_settings(config)
    path = peakrec.build_bundle(
        **{**demo_inputs(demo_dir), "config": config}, out=tmp_path / "b", progress=False
    )
    bundle = peakrec.load_bundle(path)
    assert bundle.config == to_dict(serving)
    rec = peakrec.Recommender(bundle)
    assert rec.settings == serving and rec.config.new_item_max_share == 0.2
    # campaigns keep their windows in vocab.json
    by_id = {c["id"]: c for c in bundle.vocab["campaigns"]}
    for c in build.campaigns:
        assert (by_id[c.id]["start"], by_id[c.id]["end"]) == (c.start, c.end)
    assert any(c.start is not None for c in build.campaigns)  # the demo's campaigns have windows
