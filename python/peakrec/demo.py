"""`make demo`: the whole path as a user runs it, from a fresh clone, in a few minutes.

generate the demo catalogue → build a bundle → start `peakrec serve` → storefront, search and similar
pages for three shoppers, mixed-script searches → an UpdateItems sells an item out and it leaves every
page → clean stop.
Everything lands in ./demo (removed first). Sizes: PEAKREC_DEMO_ITEMS / PEAKREC_DEMO_USERS.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from peakrec.pipeline.types import Shopper

ITEMS = int(os.environ.get("PEAKREC_DEMO_ITEMS", "200000"))
USERS = int(os.environ.get("PEAKREC_DEMO_USERS", "50000"))
CLI = [sys.executable, "-m", "peakrec.cli"]

LOYAL = Shopper(user_id="u-zj-loyal-01", member_brands=("Nike",))
BRAZIL = Shopper(user_id="u-br-cold-01", region="BR", context={"device": "android", "age_band": "18-24"})
SMALL_TOWN = Shopper(user_id="u-smalltown-01")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _title(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _run(*args: str) -> str:
    """Runs `peakrec ARGS`, echoing the command and its output."""
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ peakrec {shown}", flush=True)
    done = subprocess.run([*CLI, *args], capture_output=True, text=True)
    print(done.stdout.rstrip() or done.stderr.rstrip(), flush=True)
    if done.returncode != 0 and "UNIMPLEMENTED" not in done.stderr:
        raise SystemExit(f"demo: `peakrec {shown}` failed:\n{done.stderr}")
    return done.stdout


def _shopper_args(s: Shopper) -> list[str]:
    args = []
    if s.user_id:
        args += ["--user", s.user_id]
    if s.region:
        args += ["--region", s.region]
    for key, value in s.context.items():
        args += ["--context", f"{key}={value}"]
    for brand in s.member_brands:
        args += ["--member", brand]
    return args


def main() -> None:
    started = time.monotonic()
    root = Path("demo")
    shutil.rmtree(root, ignore_errors=True)
    data, bundles = root / "data", root / "bundles"

    _title(f"1. Generate the Double-11 demo catalogue ({ITEMS:,} items, {USERS:,} shoppers)")
    _run("demo-data", "--items", str(ITEMS), "--users", str(USERS), "--out", str(data))

    _title("2. Build a bundle (FAISS index, columns, cold-start table, fallbacks; recall measured)")
    _run(
        "build", "--items", str(data / "items.jsonl"), "--users", str(data / "users.jsonl"),
        "--item-vectors", str(data / "item_vectors.npy"), "--user-vectors", str(data / "user_vectors.npy"),
        "--config", str(data / "build.toml"), "--quiet", "--out", str(bundles),
    )  # fmt: skip

    port, admin_port, metrics_port = _free_port(), _free_port(), _free_port()
    target, admin = f"127.0.0.1:{port}", f"127.0.0.1:{admin_port}"
    _title("3. Start the server: a supervisor and 2 workers sharing one port")
    cmd = ["serve", "--bundles", str(bundles), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--admin-port", str(admin_port), "--metrics-port", str(metrics_port), "--workers", "2"]
    print(f"$ peakrec {' '.join(cmd)}", flush=True)
    log = open(root / "serve.log", "w")
    server = subprocess.Popen([*CLI, *cmd], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if "ready" not in line:
            raise SystemExit(f"demo: the server did not start; see {root / 'serve.log'}")
        print(line.rstrip(), flush=True)
        _queries(target, admin)
        _sell_out(target, admin)
    finally:
        _title("7. Stop the server cleanly (SIGTERM: health NOT_SERVING, drain, exit 0)")
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        rest = server.stdout.read() if server.stdout else ""
        print(rest.rstrip(), flush=True)
        log.close()
    print(f"\nserver exit code {code}; demo took {time.monotonic() - started:.0f}s; files in {root}/")
    venv_bin = os.path.relpath(Path(sys.executable).parent)
    print(f"the `peakrec` command is {venv_bin}/peakrec (or run `. {venv_bin}/activate` first)")
    if code != 0:
        raise SystemExit(1)


def _queries(target: str, admin: str) -> None:
    t = ["--target", target, "--size", "8"]
    _title("4. A loyal Nike member in Zhejiang: storefront, search, similar items")
    _run("query", "storefront", *t, *_shopper_args(LOYAL))
    _run("query", "search", "跑步鞋", *t, *_shopper_args(LOYAL))
    _run("query", "similar", _top_item(target, LOYAL), *t, *_shopper_args(LOYAL))

    _title("5. A cold shopper from Brazil, known only by context features")
    _run("query", "storefront", *t, *_shopper_args(BRAZIL))
    _title("   A small-town shopper in Gansu, targeted by the 9.9 free-shipping campaign")
    _run("query", "storefront", *t, *_shopper_args(SMALL_TOWN))

    _title("   Search: one mixed-script query for two shoppers (BM25 + vector recall, personalised)")
    _run("query", "search", "连衣裙 floral dress", *t, *_shopper_args(SMALL_TOWN))
    _run("query", "search", "连衣裙 floral dress", *t, *_shopper_args(BRAZIL))
    _run("query", "search", "ｎｉｋｅ 跑步鞋 cushioned", *t, *_shopper_args(LOYAL))


def _top_item(target: str, shopper: Shopper) -> str:
    from peakrec.service.client import Client

    with Client(target, timeout=10) as client:
        return client.storefront(shopper, page_size=1).item_ids[0]


def _sell_out(target: str, admin: str) -> None:
    from peakrec.service.client import Client

    with Client(target, timeout=10) as client:
        item, neighbour = client.storefront(LOYAL, page_size=2).item_ids
    _title(f"6. UpdateItems: {item} sells out (journaled, fsynced, visible to every worker on return)")
    _run("query", "update", item, "--stock", "0", "--admin-target", admin)
    _run("query", "storefront", "--target", target, "--size", "8", *_shopper_args(LOYAL))
    pages = 0
    for _ in range(8):  # fresh connections land on both workers
        with Client(target, timeout=10, options=[("grpc.use_local_subchannel_pool", 1)]) as client:
            for shopper in (LOYAL, BRAZIL, SMALL_TOWN):
                assert item not in client.storefront(shopper, page_size=100).item_ids
                pages += 1
            assert item not in client.similar_items(neighbour, LOYAL, page_size=100).item_ids
            pages += 1
    with Client(target, admin_target=admin, timeout=10) as client:
        workers = len(client.index_info()["workers"])
    print(
        f"{item} is on none of {pages} pages (100 items each) fetched over 8 connections to {workers} workers"
    )


if __name__ == "__main__":
    main()
