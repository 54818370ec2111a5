"""The committed gRPC code in python/peakrec/v1 is what `make protos` makes from protos/."""

from pathlib import Path

import pytest
from peakrec.service import protogen

pytest.importorskip("grpc_tools")


def test_committed_generated_code_matches_protos(tmp_path: Path):
    generated = protogen.generate(tmp_path)
    assert generated, "protoc produced nothing"
    committed = protogen.ROOT / "python" / "peakrec" / "v1"
    for path in generated:
        mine = (committed / path.name).read_text()
        assert mine == path.read_text(), f"{path.name} is stale: run `make protos`"
