"""Operating `peakrec serve`: TLS on both ports (a self-signed certificate made here, real TLS
clients), JSON logs, `peakrec query ... --json`, `query update --from`, `query reload`, and the
client's retry policy (UNAVAILABLE only)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import peakrec
import pytest
from fake_engine import write_bundle
from grpc_health.v1 import health_pb2, health_pb2_grpc
from peakrec.errors import InvalidInputError
from peakrec.pipeline.types import Shopper
from peakrec.v1 import recommender_pb2 as pb
from service_harness import Server


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("ops")
    cert, key = self_signed(root)
    bundles = root / "bundles"
    write_bundle(bundles, "v1")
    write_bundle(bundles, "v2", current=False)
    args = ("--tls-cert", str(cert), "--tls-key", str(key), "--log-format", "json", "--log-level", "info")
    args += ("--access-log",)
    with Server(bundles, workers=1, engine="fake_engine", args=args) as server:
        yield server, cert


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peakrec.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
def test_tls_client_gets_a_page_and_admin_answers(tls_server):
    server, cert = tls_server
    roots = cert.read_bytes()
    with peakrec.Client(
        server.target, admin_target=server.admin_target, timeout=5, tls=True, root_certificates=roots
    ) as client:
        page = client.storefront(Shopper(user_id="u1"), page_size=3)
        assert page.item_ids == ["I0", "I1", "I2"] and page.bundle_version == "v1"
        assert client.index_info()["bundle_version"] == "v1"  # the admin port speaks TLS too


@pytest.mark.slow
def test_tls_health_answers_over_tls_and_plaintext_is_refused(tls_server):
    server, cert = tls_server
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    for target in (server.target, server.admin_target):
        with grpc.secure_channel(target, credentials) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with peakrec.Client(server.target, timeout=1, retries=1) as plain:
        with pytest.raises(grpc.RpcError) as info:
            plain.storefront()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.slow
def test_tls_with_an_untrusted_certificate_is_refused(tls_server, tmp_path: Path):
    server, _ = tls_server
    other, _ = self_signed(tmp_path)
    with peakrec.Client(server.target, timeout=2, retries=1, root_certificates=other.read_bytes()) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.storefront()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.slow
def test_query_json_over_tls(tls_server):
    server, cert = tls_server
    done = cli(
        "query", "storefront", "--target", server.target, "--tls-ca", str(cert), "--size", "2", "--json"
    )
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    assert page["bundle_version"] == "v1" and [i["item_id"] for i in page["items"]] == ["I0", "I1"]
    assert set(page["items"][0]) == {"item_id", "score", "reason", "title", "brand", "price"}


@pytest.mark.slow
def test_query_update_from_a_file_and_reload(tls_server, tmp_path: Path):
    server, cert = tls_server
    tls = ("--tls-ca", str(cert), "--target", server.target, "--admin-target", server.admin_target)
    updates = tmp_path / "updates.jsonl"
    updates.write_text('{"item_id": "I0", "stock": 0}\n{"item_id": "I1", "price": 1.5}\n')
    done = cli("query", "update", "--from", str(updates), *tls, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["updated"] == 2
    page = json.loads(cli("query", "storefront", *tls, "--size", "2", "--json").stdout)
    assert [i["item_id"] for i in page["items"]] == ["I1", "I2"]  # I0 sold out
    assert page["items"][0]["price"] == pytest.approx(1.5)

    done = cli("query", "reload", "v2", *tls, "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "serving v2"
    page = json.loads(cli("query", "storefront", *tls, "--size", "1", "--json").stdout)
    assert page["bundle_version"] == "v2"

    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"item_id": "NOPE", "stock": 1}\n')
    done = cli("query", "update", "--from", str(unknown), *tls)
    assert done.returncode == 1 and "NOPE" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_logs_are_json_lines(tls_server):
    server, _ = tls_server
    records = []
    for line in server.log.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    serving = [r for r in records if r["message"].startswith("worker 0 (pid")]
    assert serving and serving[0]["process"] == "worker 0" and serving[0]["level"] == "INFO"
    assert {"time", "logger", "pid"} <= set(serving[0])
    assert serving[0]["time"].endswith("Z")


@pytest.mark.slow
def test_access_log_has_a_line_per_rpc(tls_server):
    server, cert = tls_server
    with peakrec.Client(server.target, timeout=5, root_certificates=cert.read_bytes()) as client:
        client.storefront(page_size=4)
        with pytest.raises(InvalidInputError):
            client.search("")
    access = []
    for line in server.log.read_text().splitlines():
        if line.startswith("{") and '"peakrec.access"' in line:
            access.append(json.loads(line))
    ok = [r for r in access if r["rpc"] == "Storefront" and r["items"] == 4]
    assert ok and ok[-1]["code"] == "OK" and ok[-1]["degraded"] is False and ok[-1]["latency_ms"] > 0
    assert ok[-1]["bundle_version"] in ("v1", "v2")
    bad = [r for r in access if r["rpc"] == "Search"]
    assert bad and bad[-1]["code"] == "INVALID_ARGUMENT" and bad[-1]["bundle_version"] == ""
    assert not [r for r in access if "Health" in r["rpc"]]


# -- client retry policy ---------------------------------------------------------------------------------
class Flaky:
    """A Recommender whose Storefront fails with ``code`` ``failures`` times, then answers."""

    def __init__(self, code: grpc.StatusCode, failures: int):
        self.code, self.failures, self.calls = code, failures, 0
        self.lock = threading.Lock()

    def storefront(
        self, request: pb.StorefrontRequest, context: grpc.ServicerContext
    ) -> pb.RecommendResponse:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if failing:
            context.abort(self.code, "try again")
        return pb.RecommendResponse(item_ids=["A"], scores=[1.0], bundle_version="flaky")


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, Flaky, int]]:
    unavailable, invalid = Flaky(grpc.StatusCode.UNAVAILABLE, 2), Flaky(grpc.StatusCode.INVALID_ARGUMENT, 2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for service, impl in (("peakrec.v1.Recommender", unavailable), ("peakrec.v1.Admin", invalid)):
        # Admin has no Storefront: the handler only stands in so the two services' policies are tested
        handler = grpc.unary_unary_rpc_method_handler(
            impl.storefront,
            request_deserializer=pb.StorefrontRequest.FromString,
            response_serializer=pb.RecommendResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"Storefront": handler}),)
        )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield unavailable, invalid, port
    finally:
        server.stop(None)


def test_client_retries_unavailable(flaky):
    unavailable, _, port = flaky
    with peakrec.Client(f"127.0.0.1:{port}", timeout=5) as client:
        page = client.storefront()
    assert page.bundle_version == "flaky" and unavailable.calls == 3


def test_client_does_not_retry_other_codes(flaky):
    _, invalid, port = flaky
    with peakrec.Client(f"127.0.0.1:{port}", timeout=5) as client:
        call = client._channel.unary_unary(
            "/peakrec.v1.Admin/Storefront",
            request_serializer=pb.StorefrontRequest.SerializeToString,
            response_deserializer=pb.RecommendResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            call(pb.StorefrontRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and invalid.calls == 1


def test_client_retries_can_be_turned_off(flaky):
    unavailable, _, port = flaky
    with peakrec.Client(f"127.0.0.1:{port}", timeout=5, retries=1) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.storefront()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and unavailable.calls == 1
    with pytest.raises(InvalidInputError):
        peakrec.Client(f"127.0.0.1:{port}", retries=0)
