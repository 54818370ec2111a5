"""The benchmark's floor: N processes on one port (SO_REUSEPORT), each a plain grpcio sync server whose
Storefront returns a prebuilt 100-item reply — no interceptors, no metrics, no request parsing.

python bench/bare_server.py --port P --workers N   (prints "ready on" once every process listens)
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from concurrent import futures

import grpc
from peakrec.v1 import recommender_pb2 as pb
from peakrec.v1 import recommender_pb2_grpc as pb_grpc

REPLY = pb.RecommendResponse(
    item_ids=[f"I{i:07d}" for i in range(100)],
    scores=[1.0 - i / 100 for i in range(100)],
    bundle_version="bare",
)


class Bare(pb_grpc.RecommenderServicer):
    def Storefront(self, request, context):
        return REPLY


def child(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=72), options=[("grpc.so_reuseport", 1)])
    pb_grpc.add_RecommenderServicer_to_server(Bare(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("child ready", flush=True)
    stop.wait()
    server.stop(1).wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.port)
        return
    cmd = [sys.executable, __file__, "--child", "--port", str(args.port)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.workers)]
    for p in procs:
        assert p.stdout is not None and "ready" in p.stdout.readline()
    print(f"bare: ready on 127.0.0.1:{args.port}, pids {' '.join(str(p.pid) for p in procs)}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(10)


if __name__ == "__main__":
    main()
