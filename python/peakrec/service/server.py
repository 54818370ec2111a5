"""One worker's gRPC servers: `serve()` composes the servicers, health, reflection and interceptors on
the public and the admin port, and drains on SIGTERM. The supervisor (supervisor.py) runs N of these
processes on the same ports with SO_REUSEPORT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from peakrec.service import interceptors, logsetup, observability
from peakrec.service.admission import DRAIN_LIMIT, AdmissionExecutor
from peakrec.service.servicers import AdminServicer, RecommenderServicer
from peakrec.service.worker import Worker
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger("peakrec.service")

RECOMMENDER = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
ADMIN = pb.DESCRIPTOR.services_by_name["Admin"].full_name
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class ServeOptions:
    bundles: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 50051
    admin_host: str = "127.0.0.1"
    admin_port: int = 50052
    admin_token: str | None = None
    max_inflight: int = 2
    max_queue: int = 64
    queue_ms: float = 20.0
    grace_seconds: float = 10.0
    drain_delay: float = 0.1
    max_connection_age: float = 5.0
    health_port: int | None = None  # plaintext grpc.health.v1 only, outside admission (probes)
    engine: str = "peakrec"
    worker_index: int = 0
    workers: int = 1
    tls_cert: Path | None = None  # PEM certificate chain and key: TLS on both ports
    tls_key: Path | None = None
    access_log: bool = False  # one log line per RPC (observability.py)


PUBLIC_MAX_MESSAGE = 4 * 1024 * 1024  # a storefront request is a few kB; bigger is a mistake or abuse
ADMIN_MAX_MESSAGE = 64 * 1024 * 1024  # UpdateItems carries up to 100k updates


def check_admin_bind(host: str, token: str | None) -> None:
    """Admin changes live state: a non-local bind must carry a token."""
    if host not in LOCAL_HOSTS and not token:
        raise ValueError(f"--admin-host {host}: binding admin beyond localhost needs --admin-token")


def _options(max_message: int, max_connection_age: float = 0.0) -> list[tuple[str, int]]:
    options = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_metadata_size", 16 * 1024),
    ]
    if max_connection_age > 0:
        # Clients reconnect after a GOAWAY, and SO_REUSEPORT spreads the new connections over the
        # workers: a restarted worker gets its share of long-lived clients back within this age.
        options += [
            ("grpc.max_connection_age_ms", int(max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", 30_000),  # calls in flight on the old connection finish
        ]
    return options


def _add_port(server: grpc.Server, address: str, opts: ServeOptions) -> None:
    """Listens on ``address`` with TLS when a certificate is configured, else plaintext."""
    if opts.tls_cert and opts.tls_key:
        pair = (Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())
        server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
    else:
        server.add_insecure_port(address)


def _health(server: grpc.Server, service: str) -> health.HealthServicer:
    servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", service):
        servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return servicer


def _bind_limit(server: grpc.Server, executor: AdmissionExecutor) -> Callable[[], bool]:
    """Keeps grpcio's ``maximum_concurrent_rpcs`` at the executor's (adaptive) limit and returns
    whether grpcio is about to refuse, for that limit, the call it is asking the interceptors about.
    grpcio asks from its poll thread holding the lock that guards its count of active calls, so
    reading that count makes the tally of its refusals exact. Both are private attributes of
    grpcio's server; without them the limit stays fixed and the executor's own count is read."""
    state = getattr(server, "_state", None)
    if (
        state is None
        or not hasattr(state, "active_rpc_count")
        or not hasattr(state, "maximum_concurrent_rpcs")
    ):
        log.warning(
            "grpcio %s: no private server state to follow; the admission limit stays fixed", grpc.__version__
        )
        executor.on_limit = None
        fixed = executor.limit
        return lambda: executor.pending >= fixed

    def set_limit(limit: int) -> None:
        with state.lock:  # the poll thread reads it twice under this lock: both reads agree
            state.maximum_concurrent_rpcs = DRAIN_LIMIT if executor.draining else limit

    executor.on_limit = set_limit
    return lambda: state.active_rpc_count >= state.maximum_concurrent_rpcs


def serve(opts: ServeOptions, stop: threading.Event | None = None) -> int:
    """Runs one worker until SIGTERM/SIGINT (or ``stop``), then drains.

    Health reports NOT_SERVING until a bundle is live. On SIGTERM the worker keeps serving for
    ``drain_delay`` (calls already on the wire are taken in), then reports NOT_SERVING and answers
    new calls UNAVAILABLE while every call it took in finishes (within ``grace_seconds``).
    """
    check_admin_bind(opts.admin_host, opts.admin_token)
    stop = stop or threading.Event()
    worker = Worker(
        opts.bundles, opts.state_dir, engine=opts.engine, index=opts.worker_index, workers=opts.workers
    )

    executor = AdmissionExecutor(opts.max_inflight, opts.max_queue, opts.queue_ms / 1000)
    service = interceptors.ServiceInterceptor(served=executor.served)
    public = grpc.server(
        executor,
        interceptors=observability.chain(opts.access_log, [service]),
        options=_options(PUBLIC_MAX_MESSAGE, opts.max_connection_age),
        maximum_concurrent_rpcs=executor.limit,  # beyond the queue: refused before a thread sees it
    )
    service.refusing = _bind_limit(public, executor)
    pb_grpc.add_RecommenderServicer_to_server(RecommenderServicer(worker), public)
    public_health = _health(public, RECOMMENDER)
    reflection.enable_server_reflection((RECOMMENDER, health.SERVICE_NAME, reflection.SERVICE_NAME), public)
    _add_port(public, f"{opts.host}:{opts.port}", opts)

    # Probes on a server of their own: grpcio's concurrency limit covers every method of a server,
    # so under overload the public port's health checks are refused with the rest, and a pod would
    # be taken out of service (or restarted) at the peak. Plaintext: kubelet's gRPC probes are.
    probe = None
    if opts.health_port is not None:
        probe = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="peakrec-health"),
            options=_options(64 * 1024),
        )
        health_pb2_grpc.add_HealthServicer_to_server(public_health, probe)
        probe.add_insecure_port(f"{opts.host}:{opts.health_port}")

    admin_chain: list[grpc.ServerInterceptor] = []
    if opts.admin_token:  # outermost: the service interceptor caches its wrapper per method
        admin_chain.append(interceptors.TokenInterceptor(opts.admin_token))
    admin_service = interceptors.ServiceInterceptor()
    admin_chain.append(admin_service)
    admin = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="peakrec-admin"),
        interceptors=observability.chain(opts.access_log, admin_chain),
        options=_options(ADMIN_MAX_MESSAGE),
    )
    pb_grpc.add_AdminServicer_to_server(AdminServicer(worker), admin)
    admin_health = _health(admin, ADMIN)
    reflection.enable_server_reflection((ADMIN, health.SERVICE_NAME, reflection.SERVICE_NAME), admin)
    _add_port(admin, f"{opts.admin_host}:{opts.admin_port}", opts)

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    worker.report(ready=False)
    worker.follow_current()
    if worker.live is None:
        log.error("worker %d: no bundle to serve: %s", opts.worker_index, worker.last_error)
        return 3
    public.start()
    admin.start()
    if probe is not None:
        probe.start()
    for servicer, service_name in ((public_health, RECOMMENDER), (admin_health, ADMIN)):
        for name in ("", service_name):
            servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    worker.start_watching()
    worker.report(ready=True)
    log.info("worker %d (pid %d) serving %s", opts.worker_index, os.getpid(), worker.live.version)

    stop.wait()
    servers = (public, admin) if probe is None else (public, admin, probe)
    _drain(opts, worker, executor, servers, (public_health, admin_health), (service, admin_service))
    log.info("worker %d drained", opts.worker_index)
    return 0


def _drain(
    opts: ServeOptions,
    worker: Worker,
    executor: AdmissionExecutor,
    servers: tuple[grpc.Server, ...],
    healths: tuple[health.HealthServicer, ...],
    services: tuple[interceptors.ServiceInterceptor, ...],
) -> None:
    """Loses no call taken in. grpc's own shutdown cancels calls that reached the transport but not
    yet a thread, so the worker first stops taking calls in itself: after ``drain_delay`` (calls sent
    before SIGTERM are taken in meanwhile) health turns NOT_SERVING and calls arriving from then on
    are answered UNAVAILABLE; once the calls taken in have finished, the servers stop."""
    deadline = time.monotonic() + opts.drain_delay + opts.grace_seconds
    worker.stop_watching()
    time.sleep(opts.drain_delay)
    # In this order: once health says NOT_SERVING, every new call is told UNAVAILABLE (none is
    # served, and grpcio refuses none for its limit).
    executor.drain()
    for service in services:
        service.start_draining()
    for servicer in healths:
        servicer.enter_graceful_shutdown()
    while executor.taken_in and time.monotonic() < deadline:  # not the calls refused meanwhile
        time.sleep(0.005)
    remaining = max(0.0, deadline - time.monotonic())
    for event in [server.stop(remaining) for server in servers]:
        event.wait(remaining + 1)


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the supervisor dies, so no orphan keeps the port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def worker_main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process (started by the supervisor)."""
    parser = argparse.ArgumentParser(prog="peakrec-worker")
    parser.add_argument("--bundles", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-host", default="127.0.0.1")
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--max-inflight", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--queue-ms", type=float, default=20.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--drain-delay", type=float, default=0.1)
    parser.add_argument("--max-connection-age", type=float, default=5.0)
    parser.add_argument("--health-port", type=int)
    parser.add_argument("--engine", default="peakrec")
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="text")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent()
    logsetup.configure(args.log_level, args.log_format, f"worker {args.worker_index}")
    try:
        import faiss

        faiss.omp_set_num_threads(1)  # parallelism comes from worker processes
    except ImportError:
        pass
    opts = ServeOptions(
        bundles=args.bundles,
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        admin_token=os.environ.get("PEAKREC_ADMIN_TOKEN") or None,
        max_inflight=args.max_inflight,
        max_queue=args.max_queue,
        queue_ms=args.queue_ms,
        grace_seconds=args.grace,
        drain_delay=args.drain_delay,
        max_connection_age=args.max_connection_age,
        health_port=args.health_port,
        engine=args.engine,
        worker_index=args.worker_index,
        workers=args.workers,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        access_log=args.access_log,
    )
    return serve(opts)


if __name__ == "__main__":
    sys.exit(worker_main())
