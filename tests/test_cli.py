"""The `peakrec` command line as a whole: --version, help on every flag, range checks, exit codes,
progress bars, `prune`, `query update --from` parsing, and the CPU count behind `--workers`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import peakrec
import pytest
from peakrec.bundle.prune import prune
from peakrec.cli import EXIT_RUNTIME, EXIT_UNAVAILABLE, EXIT_USAGE, main, parser, progress_wanted, walk
from peakrec.errors import InvalidInputError
from peakrec.service.cli import read_updates
from peakrec.service.cpus import available_cpus, cgroup_quota
from service_harness import free_port


def test_version_names_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"peakrec {peakrec.__version__} ")


def test_every_flag_of_every_command_has_help():
    missing = []
    for p in walk(parser()):
        for action in p._actions:
            if action.help is None and action.option_strings:
                missing.append(f"{p.prog} {'/'.join(action.option_strings)}")
    assert not missing, missing


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["demo-data", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "number of items (default: 200000)" in out and "(default: None)" not in out


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "2 usage" in out and "69 server unavailable" in out


def test_every_parser_uses_the_defaults_formatter():
    assert {p.formatter_class.__name__ for p in walk(parser())} == {"HelpFormatter"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["build", "--items", "a", "--users", "b", "--out", "c", "--min-recall", "2"],
            "--min-recall: 2 is out",
        ),
        (["build", "--items", "a", "--users", "b", "--out", "c", "--min-recall", "nan"], "out of range"),
        (["demo-data", "--out", "x", "--items", "5"], "--items: 5 is out of range (must be at least 100)"),
        (["demo-data", "--out", "x", "--cold-share", "1.5"], "--cold-share: 1.5 is out of range"),
        (["serve", "--bundles", "b", "--port", "70000"], "--port: 70000 is out of range"),
        (["serve", "--bundles", "b", "--workers", "0"], "--workers: 0 is out of range"),
        (["query", "storefront", "--size", "0"], "--size: 0 is out of range"),
        (["query", "storefront", "--timeout", "x"], "'x' is not a number"),
        (["prune", "b", "--keep", "0"], "--keep: 0 is out of range"),
    ],
)
def test_out_of_range_values_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_contradicting_flags_are_usage_errors(tmp_path: Path, capsys):
    assert main(["serve", "--bundles", str(tmp_path), "--tls-cert", "c.pem"]) == EXIT_USAGE
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
    assert main(["query", "update", "A1"]) == EXIT_USAGE
    assert "nothing to change" in capsys.readouterr().err
    assert main(["query", "update", "A1", "--stock", "1", "--from", "x.jsonl"]) == EXIT_USAGE
    assert main(["query", "storefront", "--context", "novalue"]) == EXIT_USAGE


def test_bad_input_data_is_a_runtime_error(tmp_path: Path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == EXIT_RUNTIME
    assert "no such directory" in capsys.readouterr().err


def test_an_unreachable_server_exits_unavailable(capsys):
    port = free_port()  # nothing listens there
    code = main(["query", "storefront", "--target", f"127.0.0.1:{port}", "--timeout", "0.3"])
    assert code == EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err


def test_progress_only_for_a_terminal(monkeypatch):
    class Stream:
        def __init__(self, tty: bool):
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not progress_wanted(argparse.Namespace(quiet=False))
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert progress_wanted(argparse.Namespace(quiet=False))
    assert not progress_wanted(argparse.Namespace(quiet=True))


def test_demo_data_shows_a_bar_when_asked(tmp_path: Path, capsys):
    from peakrec.catalog.demo_data import DemoSpec, generate

    generate(tmp_path, DemoSpec(items=200, users=20, dim=8), progress=True)
    err = capsys.readouterr().err
    assert "demo-data:" in err and "/8 [" in err  # a bar over the 8 steps


def test_demo_data_piped_prints_no_bar(tmp_path: Path):
    cmd = [sys.executable, "-m", "peakrec.cli", "demo-data", "--items", "200", "--users", "20", "--dim", "8"]
    done = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.startswith("demo-data: 200 items")


def test_build_warns_when_every_user_is_cold(tmp_path: Path, capsys):
    assert main(["demo-data", "--items", "300", "--users", "30", "--dim", "8", "--out", str(tmp_path)]) == 0
    args = ["build", "--items", str(tmp_path / "items.jsonl"), "--users", str(tmp_path / "users.jsonl")]
    args += ["--item-vectors", str(tmp_path / "item_vectors.npy"), "--out", str(tmp_path / "b"), "--quiet"]
    capsys.readouterr()
    assert main(args) == 0
    assert "none of the 30 users has a vector" in capsys.readouterr().err
    uv = ["--user-vectors", str(tmp_path / "user_vectors.npy")]
    assert main([*args, *uv]) == 0
    assert "warning" not in capsys.readouterr().err


# -- prune -----------------------------------------------------------------------------------------------
def _fake_bundle(bundles: Path, name: str, created: str) -> None:
    (bundles / name).mkdir(parents=True)
    (bundles / name / "manifest.json").write_text(json.dumps({"created_at": created}))


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    root = tmp_path / "bundles"
    for day in range(1, 6):
        _fake_bundle(root, f"v{day}", f"2026-11-0{day}T00:00:00Z")
    (root / "CURRENT").write_text("v2\n")  # rolled back to an older bundle
    (root / "notes").mkdir()  # not a bundle: never touched
    return root


def test_prune_keeps_the_newest_and_current(bundles: Path, capsys):
    assert main(["prune", str(bundles), "--keep", "2"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in bundles.iterdir()) == ["CURRENT", "notes", "v2", "v4", "v5"]
    assert "deleted v1" in out and "kept v2 (CURRENT)" in out and "2 deleted" in out


def test_prune_spares_a_bundle_a_worker_serves(bundles: Path):
    workers = bundles / ".state" / "workers"
    workers.mkdir(parents=True)
    (workers / "0.json").write_text(json.dumps({"index": 0, "bundle_dir": "v1", "bundle_version": "v1"}))
    result = prune(bundles, keep=1)
    assert result.removed == ["v4", "v3"] and result.protected == {
        "v2": "CURRENT",
        "v1": "served by worker 0",
    }
    assert not (bundles / "v3").exists() and (bundles / "v1").exists()


def test_prune_dry_run_deletes_nothing(bundles: Path, capsys):
    assert main(["prune", str(bundles), "--keep", "1", "--dry-run"]) == 0
    assert "would delete v4" in capsys.readouterr().out
    assert all((bundles / f"v{day}").is_dir() for day in range(1, 6))


# -- query update --from -------------------------------------------------------------------------------
def test_read_updates_from_jsonl(tmp_path: Path):
    path = tmp_path / "u.jsonl"
    path.write_text('{"item_id": "A1", "stock": 0}\n\n{"item_id": "B2", "price": 9, "available": false}\n')
    updates = read_updates(path)
    assert [(u.item_id, u.stock, u.price, u.available) for u in updates] == [
        ("A1", 0, None, None),
        ("B2", None, 9, False),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "u.jsonl line 2: not JSON"),
        ('{"stock": 1}', 'u.jsonl line 2: expected an object with a string "item_id"'),
        ('{"item_id": "A", "stock": "3"}', 'u.jsonl line 2: "stock" is "3"'),
        ('{"item_id": "A", "stock": true}', 'u.jsonl line 2: "stock" is true'),
        ('{"item_id": "A", "colour": "red"}', 'u.jsonl line 2: unknown field "colour"'),
    ],
)
def test_read_updates_names_the_bad_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / "u.jsonl"
    path.write_text('{"item_id": "ok", "stock": 1}\n' + line + "\n")
    with pytest.raises(InvalidInputError, match=message.replace("{", r"\{")):
        read_updates(path)


# -- --workers default -----------------------------------------------------------------------------------
def _cgroup(tmp_path: Path, own: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_cgroup_v2_quota_of_own_cgroup_or_an_ancestor(tmp_path: Path):
    root, proc = _cgroup(
        tmp_path,
        "/kubepods/pod1/c1",
        {
            "cpu.max": "max 100000\n",
            "kubepods/pod1/cpu.max": "300000 100000\n",
            "kubepods/pod1/c1/cpu.max": "max 100000\n",
        },
    )
    assert cgroup_quota(root, proc) == 3.0
    assert available_cpus(root, proc) == min(3, available_cpus(tmp_path / "none", proc))


def test_cgroup_quota_rounds_down_but_never_below_one(tmp_path: Path):
    root, proc = _cgroup(tmp_path, "/", {"cpu.max": "50000 100000\n"})
    assert cgroup_quota(root, proc) == 0.5 and available_cpus(root, proc) == 1


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path):
    root, proc = _cgroup(
        tmp_path, "", {"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    )
    assert cgroup_quota(root, proc) == 1.5
    unlimited, proc = _cgroup(tmp_path / "u", "/", {"cpu.max": "max 100000\n"})
    assert cgroup_quota(unlimited, proc) is None
