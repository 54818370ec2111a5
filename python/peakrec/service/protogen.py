"""Generates python/peakrec/v1 from protos/ with grpcio-tools (`make protos`)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTOS = ROOT / "protos"
PROTO_FILES = ["peakrec/v1/recommender.proto"]


def generate(out_dir: Path) -> list[Path]:
    """Writes the *_pb2.py, *_pb2.pyi and *_pb2_grpc.py files under ``out_dir``; returns them."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    out_dir.mkdir(parents=True, exist_ok=True)
    for proto in PROTO_FILES:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTOS / proto),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    return sorted(p for p in (out_dir / "peakrec" / "v1").glob("*_pb2*.py*"))


def main() -> int:
    target = ROOT / "python"
    for path in generate(target):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
