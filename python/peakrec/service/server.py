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
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from peakrec.service import interceptors, logsetup, observability
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
    max_inflight: int = 32
    grace_seconds: float = 10.0
    engine: str = "peakrec"
    worker_index: int = 0
    workers: int = 1
    tls_cert: Path | None = None  # PEM certificate chain and key: TLS on both ports
    tls_key: Path | None = None
    access_log: bool = False  # one log line per RPC (observability.py)


def check_admin_bind(host: str, token: str | None) -> None:
    """Admin changes live state: a non-local bind must carry a token."""
    if host not in LOCAL_HOSTS and not token:
        raise ValueError(f"--admin-host {host}: binding admin beyond localhost needs --admin-token")


def _options() -> list[tuple[str, int]]:
    return [("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]


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


def serve(opts: ServeOptions, stop: threading.Event | None = None) -> int:
    """Runs one worker until SIGTERM/SIGINT (or ``stop``), then drains within the grace period.

    Health reports NOT_SERVING until a bundle is live, and again from the moment the drain starts.
    """
    check_admin_bind(opts.admin_host, opts.admin_token)
    stop = stop or threading.Event()
    worker = Worker(
        opts.bundles, opts.state_dir, engine=opts.engine, index=opts.worker_index, workers=opts.workers
    )

    threads = opts.max_inflight + 8  # headroom so refusals are answered while the admitted work runs
    public = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="peakrec-rpc"),
        interceptors=observability.chain(
            opts.access_log, [interceptors.ServiceInterceptor(opts.max_inflight)]
        ),
        options=_options(),
        # backstop for bursts far beyond admission: grpc refuses them before they queue for a thread
        maximum_concurrent_rpcs=4 * opts.max_inflight + 64,
    )
    pb_grpc.add_RecommenderServicer_to_server(RecommenderServicer(worker), public)
    public_health = _health(public, RECOMMENDER)
    reflection.enable_server_reflection((RECOMMENDER, health.SERVICE_NAME, reflection.SERVICE_NAME), public)
    _add_port(public, f"{opts.host}:{opts.port}", opts)

    admin_chain: list[grpc.ServerInterceptor] = []
    if opts.admin_token:  # outermost: the service interceptor caches its wrapper per method
        admin_chain.append(interceptors.TokenInterceptor(opts.admin_token))
    admin_chain.append(interceptors.ServiceInterceptor(None))
    admin = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="peakrec-admin"),
        interceptors=observability.chain(opts.access_log, admin_chain),
        options=_options(),
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
    for servicer, service in ((public_health, RECOMMENDER), (admin_health, ADMIN)):
        for name in ("", service):
            servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    worker.start_watching()
    worker.report(ready=True)
    log.info("worker %d (pid %d) serving %s", opts.worker_index, os.getpid(), worker.live.version)

    stop.wait()
    # Drain: probes see NOT_SERVING, no new RPCs are accepted, in-flight ones get the grace period.
    public_health.enter_graceful_shutdown()
    admin_health.enter_graceful_shutdown()
    worker.stop_watching()
    drained = [public.stop(opts.grace_seconds), admin.stop(opts.grace_seconds)]
    for event in drained:
        event.wait(opts.grace_seconds + 1)
    log.info("worker %d drained", opts.worker_index)
    return 0


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
    parser.add_argument("--max-inflight", type=int, default=32)
    parser.add_argument("--grace", type=float, default=10.0)
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
        grace_seconds=args.grace,
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
