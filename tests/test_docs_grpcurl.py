"""The grpcurl examples of docs/serving.md, carried out as grpcurl does them: the method and its
message types come from the server's reflection service, the ``-d`` JSON is parsed with protobuf's
JSON mapping into the request type found there. (grpcurl itself is not packaged for Debian.)"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fake_engine import write_bundle
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from service_harness import Server

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parent.parent / "docs" / "serving.md"


def grpcurl_commands() -> list[list[str]]:
    text = DOC.read_text().replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip().startswith("grpcurl ")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bundles = tmp_path_factory.mktemp("grpcurl") / "bundles"
    write_bundle(bundles, "v1")
    with Server(bundles, workers=1, engine="fake_engine") as s:
        yield s


def run(argv: list[str], port: int) -> object:
    assert argv[0] == "grpcurl" and "-plaintext" in argv
    data = argv[argv.index("-d") + 1] if "-d" in argv else None
    positional = [a for i, a in enumerate(argv[1:], 1) if not a.startswith("-") and argv[i - 1] != "-d"]
    address, *rest = positional
    assert re.fullmatch(r"localhost:50051", address), address
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        if rest == ["list"]:
            return database.get_services()
        (method_path,) = rest
        service_name, method_name = method_path.split("/")
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.Parse(data or "{}", request_class())
        call = channel.unary_unary(
            f"/{method_path}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        return json.loads(json_format.MessageToJson(call(request, timeout=10)))


def test_the_docs_have_grpcurl_examples():
    assert [c[-1] for c in grpcurl_commands()] == ["list", "peakrec.v1.Recommender/Storefront"]


def test_grpcurl_list_shows_the_services(server: Server):
    services = run(grpcurl_commands()[0], server.port)
    assert {"peakrec.v1.Recommender", "grpc.health.v1.Health"} <= set(services)
    assert "peakrec.v1.Admin" not in services  # never on the public port


def test_grpcurl_storefront_example_answers(server: Server):
    reply = run(grpcurl_commands()[1], server.port)
    assert len(reply["itemIds"]) == 10 and reply["bundleVersion"] == "v1"
    assert reply["reasons"] == ["popular"] * 10  # "explain": true in the example
