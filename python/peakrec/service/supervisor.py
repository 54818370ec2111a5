"""`peakrec serve`: a supervisor process that starts N worker processes sharing the public and admin
ports (SO_REUSEPORT), restarts a worker that dies, serves the summed Prometheus metrics, and on SIGTERM
drains every worker and exits 0."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from peakrec.errors import PeakrecError
from peakrec.service import logsetup, statefile
from peakrec.service.cpus import available_cpus
from peakrec.service.worker import read_current

log = logging.getLogger("peakrec.service")


@dataclass
class SupervisorOptions:
    bundles: Path
    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 50051
    admin_host: str = "127.0.0.1"
    admin_port: int = 50052
    admin_token: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    workers: int = field(default_factory=available_cpus)
    max_inflight: int = 2
    max_queue: int = 64
    queue_ms: float = 20.0
    grace_seconds: float = 10.0
    drain_delay: float = 0.1
    max_connection_age: float = 5.0
    health_port: int | None = None
    engine: str = "peakrec"
    ready_timeout: float = 120.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    access_log: bool = False


class ServeError(PeakrecError):
    """The server could not start."""


def _check_port_free(flag: str, host: str, port: int) -> None:
    """Workers bind with SO_REUSEPORT, which would silently share a port with another server of the
    same user (a forgotten `peakrec serve`): a plain bind first makes that an error."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # TIME_WAIT of a restart is fine, a listener is not
        try:
            s.bind((host.strip("[]"), port))
        except OSError as err:
            raise ServeError(
                f"{flag} {port}: cannot bind {host}:{port} ({err.strerror}); another server?"
            ) from None


def default_state_dir(bundles: Path) -> Path:
    return Path(bundles) / ".state"


class Supervisor:
    def __init__(self, opts: SupervisorOptions):
        from peakrec.service.server import check_admin_bind

        try:
            check_admin_bind(opts.admin_host, opts.admin_token)
        except ValueError as err:
            raise ServeError(str(err)) from None
        for flag, value, least in (
            ("--workers", opts.workers, 1),
            ("--max-inflight", opts.max_inflight, 1),
            ("--max-queue", opts.max_queue, 0),
            ("--queue-ms", opts.queue_ms, 0),
            ("--grace", opts.grace_seconds, 0),
            ("--drain-delay", opts.drain_delay, 0),
            ("--max-connection-age", opts.max_connection_age, 0),
        ):
            if not value >= least:  # also refuses NaN
                raise ServeError(f"{flag} {value}: must be at least {least}")
        self.opts = opts
        self.state_dir = Path(opts.state_dir or default_state_dir(opts.bundles))
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * opts.workers
        self.stopping = threading.Event()
        self.metrics_dir = self.state_dir / "metrics"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        env["OMP_NUM_THREADS"] = "1"
        if self.opts.admin_token:
            env["PEAKREC_ADMIN_TOKEN"] = self.opts.admin_token
        return env

    def _start_worker(self, index: int) -> subprocess.Popen[bytes]:
        o = self.opts
        cmd = [
            sys.executable,
            "-m",
            "peakrec.service.server",
            "--bundles", str(o.bundles),
            "--state-dir", str(self.state_dir),
            "--host", o.host,
            "--port", str(o.port),
            "--admin-host", o.admin_host,
            "--admin-port", str(o.admin_port),
            "--max-inflight", str(o.max_inflight),
            "--max-queue", str(o.max_queue),
            "--queue-ms", str(o.queue_ms),
            "--grace", str(o.grace_seconds),
            "--drain-delay", str(o.drain_delay),
            "--max-connection-age", str(o.max_connection_age),
            *(("--health-port", str(o.health_port)) if o.health_port is not None else ()),
            "--engine", o.engine,
            "--worker-index", str(index),
            "--workers", str(o.workers),
            "--log-level", o.log_level,
            "--log-format", o.log_format,
        ]  # fmt: skip
        if o.tls_cert and o.tls_key:
            cmd += ["--tls-cert", str(o.tls_cert), "--tls-key", str(o.tls_key)]
        if o.access_log:
            cmd.append("--access-log")
        status = self.state_dir / "workers" / f"{index}.json"
        status.unlink(missing_ok=True)
        return subprocess.Popen(cmd, env=self._env())

    def _ready(self, index: int) -> bool:
        try:
            status = json.loads((self.state_dir / "workers" / f"{index}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        proc = self.procs[index]
        return bool(status.get("ready")) and proc is not None and status.get("pid") == proc.pid

    def start(self) -> None:
        """Prepares the state directory, starts the workers and waits until all of them serve."""
        read_current(self.opts.bundles)  # a missing CURRENT is named here, not in N worker logs
        ports = [
            ("--port", self.opts.host, self.opts.port),
            ("--admin-port", self.opts.admin_host, self.opts.admin_port),
        ]
        if self.opts.health_port is not None:
            ports.append(("--health-port", self.opts.host, self.opts.health_port))
        for flag, host, port in ports:
            _check_port_free(flag, host, port)
        statefile.prepare(self.state_dir)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True)
        (self.state_dir / "workers").mkdir(exist_ok=True)
        for i in range(self.opts.workers):
            self.procs[i] = self._start_worker(i)
        deadline = time.monotonic() + self.opts.ready_timeout
        while not all(self._ready(i) for i in range(self.opts.workers)):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None:
                    self.stop()
                    raise ServeError(
                        f"worker {i} exited with code {proc.returncode} while starting (see its log)"
                    )
            if time.monotonic() > deadline:
                self.stop()
                raise ServeError(f"workers not ready after {self.opts.ready_timeout:g}s")
            time.sleep(0.05)
        if self.opts.metrics_port is not None:
            from prometheus_client import start_http_server

            from peakrec.service.metrics import multiprocess_registry

            start_http_server(
                self.opts.metrics_port,
                addr=self.opts.metrics_host,
                registry=multiprocess_registry(self.metrics_dir),
            )

    def supervise(self) -> None:
        """Restarts dead workers until ``stopping`` is set."""
        from peakrec.service.metrics import mark_worker_dead

        backoff = [0.0] * self.opts.workers
        while not self.stopping.wait(0.2):
            for i, proc in enumerate(self.procs):
                if proc is None or proc.poll() is None or self.stopping.is_set():
                    continue
                log.warning("worker %d (pid %d) exited with %s; restarting", i, proc.pid, proc.returncode)
                mark_worker_dead(proc.pid)
                time.sleep(backoff[i])
                backoff[i] = min(5.0, backoff[i] * 2 or 0.25)
                if not self.stopping.is_set():
                    self.procs[i] = self._start_worker(i)

    def stop(self) -> int:
        """SIGTERM to every worker, wait for their drain, SIGKILL stragglers; 0 if all drained."""
        self.stopping.set()
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.opts.drain_delay + self.opts.grace_seconds + 5
        code = 0
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode != 0:
                code = 1
        return code


def run(opts: SupervisorOptions) -> int:
    """Serves until SIGTERM or SIGINT; prints one `ready` line on stdout once every worker serves."""
    logsetup.configure(opts.log_level, opts.log_format, "supervisor")
    supervisor = Supervisor(opts)

    def on_signal(signum: int, frame: object) -> None:
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.start()
    print(
        f"peakrec serve: ready on {opts.host}:{opts.port} (admin {opts.admin_host}:{opts.admin_port}, "
        f"{opts.workers} workers, pids {' '.join(str(p.pid) for p in supervisor.procs if p)})",
        flush=True,
    )
    supervisor.supervise()
    code = supervisor.stop()
    print(f"peakrec serve: stopped (exit {code})", flush=True)
    return code
