"""``peakrec eval storefront``: metrics, and the command end to end on a small demo bundle."""

import json

import pytest
from peakrec import Recommender
from peakrec.cli import main
from peakrec.evaluation.storefront import _metrics, evaluate_storefront


def test_metrics_of_a_perfect_and_an_empty_page():
    assert _metrics(["a", "b", "c"], {"a", "b"}, 3) == (1.0, 1.0)
    assert _metrics(["x", "y"], {"a"}, 2) == (0.0, 0.0)
    recall, ndcg = _metrics(["x", "a"], {"a"}, 2)
    assert recall == 1.0 and 0 < ndcg < 1


def test_evaluate_storefront_scores_users_and_skips_unknown(bundle):
    rec = Recommender(bundle)
    heldout = [("U000001", ["I0000001", "I0000002"]), ("U000002", ["I0000003"]), ("nobody", ["I0000004"])]
    result = evaluate_storefront(rec, heldout, k=10, progress=False).summary()
    assert result["all"]["users"] == 2 and result["skipped"] == 1
    assert 0.0 <= result["all"]["recall"] <= 1.0


def test_evaluate_storefront_serves_pages_and_baseline_at_the_given_time(bundle):
    rec = Recommender(bundle)
    served_at = []
    for name in ("storefront", "fallback"):
        real = getattr(rec, name)
        setattr(rec, name, lambda request, real=real: (served_at.append(request.page.now), real(request))[1])
    heldout = [("U000001", ["I0000001"]), ("U000002", ["I0000003"])]
    evaluate_storefront(rec, heldout, k=10, progress=False, now=1_700_000_000.0)
    assert served_at == [1_700_000_000.0] * 4


def test_eval_now_takes_iso_times_and_unix_seconds():
    from peakrec.evaluation.cli import _time

    assert _time("2026-11-11T00:00:00+08:00") == _time("1794326400") == 1_794_326_400
    assert _time("2026-11-10T16:00:00") == 1_794_326_400  # no zone: UTC


@pytest.mark.slow
def test_eval_command_on_a_demo_bundle(tmp_path, capsys):
    data, bundles = tmp_path / "data", tmp_path / "bundles"
    assert main(["demo-data", "--items", "2000", "--users", "200", "--dim", "16", "--out", str(data)]) == 0
    build = ["build", "--items", str(data / "items.jsonl"), "--users", str(data / "users.jsonl"),
             "--item-vectors", str(data / "item_vectors.npy"),
             "--user-vectors", str(data / "user_vectors.npy"),
             "--config", str(data / "build.toml"), "--quiet", "--out", str(bundles)]  # fmt: skip
    assert main(build) == 0
    capsys.readouterr()
    args = ["eval", "storefront", str(bundles), "--heldout", str(data / "heldout.jsonl"), "--json", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["all"]["users"] == 200
    assert summary["cold"]["users"] > 0
    assert summary["all"]["recall"] > 0
    assert main([*args, "--now", "2026-11-11T00:00:00+08:00"]) == 0  # festival time
    festival = json.loads(capsys.readouterr().out)
    assert festival["all"]["users"] == 200 and festival != summary
