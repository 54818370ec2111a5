"""Starts `peakrec serve` as a subprocess the way users do, on loopback, and always cleans it up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``peakrec serve`` on 127.0.0.1 with fresh ports; ``start()`` returns once every worker serves."""

    def __init__(
        self,
        bundles: Path,
        workers: int = 2,
        engine: str | None = None,
        args: tuple[str, ...] = (),
        paths: tuple[Path, ...] = (),
    ):
        self.bundles = bundles
        self.paths = (TESTS, *paths)  # where --engine modules are found
        self.workers = workers
        self.engine = engine
        self.args = args
        self.port = free_port()
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self._reader = threading.Thread()
        self.lines: list[str] = []
        self.log = bundles.parent / f"serve-{self.port}.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_target(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "peakrec.cli", "serve", "--bundles", str(self.bundles)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin_port)]
        cmd += ["--metrics-port", str(self.metrics_port), "--workers", str(self.workers), "--grace", "5"]
        if self.engine:
            cmd += ["--engine", self.engine]
        return cmd + list(self.args)

    def start(self, timeout: float = 90.0) -> Server:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*map(str, self.paths), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True
            )
        assert self.proc.stdout is not None
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if "ready on" in line:
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"server did not start (exit {self.proc.returncode}):\n{self.log.read_text()}"
                )
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as an orchestrator would; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the supervisor and every worker (the whole process group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stub(self, **options: object) -> pb_grpc.RecommenderStub:
        return pb_grpc.RecommenderStub(channel(self.target, **options))

    def admin(self) -> pb_grpc.AdminStub:
        return pb_grpc.AdminStub(channel(self.admin_target))

    def metrics_text(self) -> str:
        """The supervisor's Prometheus text (--metrics-port)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return urllib.request.urlopen(url, timeout=5).read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def channel(target: str, **options: object) -> grpc.Channel:
    """A channel with its own connection (no subchannel shared with other channels), so that
    several channels spread over the workers behind SO_REUSEPORT."""
    opts = [("grpc.use_local_subchannel_pool", 1)] + list(options.items())
    return grpc.insecure_channel(target, options=opts)


def storefront(**page: object) -> pb.StorefrontRequest:
    return pb.StorefrontRequest(page=pb.PageRequest(**page))
