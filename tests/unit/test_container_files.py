"""The Dockerfile and docker-compose.yml, checked without a Docker engine."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _stage(dockerfile: str, name: str) -> str:
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", dockerfile, re.S | re.M)
    assert match, f"no stage {name}"
    return match.group(1)


def test_the_base_image_is_a_pinned_slim_python(dockerfile: str) -> None:
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    assert image
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image.group(1))


def test_the_runtime_stage_runs_as_non_root_with_no_compilers(dockerfile: str) -> None:
    runtime = _stage(dockerfile, "runtime")
    assert re.search(r"^USER 10001", runtime, re.M)
    assert not re.search(r"\b(gcc|build-essential|apt-get install)\b", runtime)
    assert "COPY --from=build /opt/orderstream /opt/orderstream" in runtime


def test_the_runtime_stage_has_the_entrypoint_stop_signal_and_healthcheck(dockerfile: str) -> None:
    runtime = _stage(dockerfile, "runtime")
    assert 'ENTRYPOINT ["worker"]' in runtime
    assert 'CMD ["run"]' in runtime
    assert "STOPSIGNAL SIGTERM" in runtime
    assert re.search(r"^ENV .*ORDERSTREAM_HTTP_PORT=8080", runtime.replace("\\\n", " "), re.M)


def test_the_healthcheck_follows_the_settings_not_a_fixed_port(dockerfile: str) -> None:
    """It used to probe 127.0.0.1:8080 whatever ORDERSTREAM_HTTP_PORT said."""
    runtime = _stage(dockerfile, "runtime").replace("\\\n", " ")
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*$", runtime, re.M)
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command == ["python", "-m", "worker.ops.probe"]
    assert not re.search(r":\d{2,5}/", healthcheck)  # no port written into the probe


def test_the_image_installs_only_locked_hashed_dependencies(dockerfile: str) -> None:
    build = _stage(dockerfile, "build").replace("\\\n", " ")
    assert "COPY requirements.lock " in build
    (run,) = re.findall(r"^RUN .*$", build, re.M)
    installs = [part.strip() for part in run.split("&&") if " install " in part]
    assert len(installs) == 2
    assert "--require-hashes" in installs[0]
    assert "-r requirements.lock" in installs[0]
    assert "--no-deps" in installs[1]
    assert "--no-build-isolation" in installs[1]  # no unpinned setuptools fetched either


def test_the_lock_pins_every_package_with_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    requirements = [line for line in text.splitlines() if line and line[0].isalpha()]
    hashed = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M)
    assert len(hashed) == len(requirements)  # every requirement is pinned, with a hash
    pins = {name.lower(): version for name, version in hashed}
    runtime = {"boto3", "structlog", "tenacity", "urllib3", "orjson", "prometheus-client"}
    assert runtime | {"setuptools", "wheel"} <= set(pins)
    assert "/opt/" not in text  # nothing of this machine's pip configuration


def test_the_urllib3_lower_bound_is_at_most_the_locked_version() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    (bound,) = re.findall(r'"urllib3>=([0-9.]+)"', pyproject)
    (locked,) = re.findall(r"^urllib3==([0-9.]+) ", (ROOT / "requirements.lock").read_text(), re.M)

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    assert version(bound) >= (2, 5)  # the oldest the webhook URL tests were run against
    assert version(bound) <= version(locked)


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    """moto is an unauthenticated AWS API and /metrics is for operators: neither may be
    published on every host interface (`"5000:5000"` was)."""
    published = [
        (name, str(port))
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} == {"moto", "worker"}
    for name, port in published:
        assert port.startswith("127.0.0.1:"), (name, port)


def test_compose_has_the_local_stack(compose: dict[str, Any]) -> None:
    assert {"moto", "worker", "echo", "table", "writer"} <= set(compose["services"])


def test_compose_worker_settings_are_valid_and_point_at_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = {k: str(v) for k, v in services["worker"]["environment"].items()}
    settings = WorkerSettings.from_env(env)  # raises on any invalid setting
    assert settings.sinks == ("log", "webhook")
    assert env["AWS_ENDPOINT_URL"].startswith("http://moto:")
    assert env["ORDERSTREAM_WEBHOOK_URL"].startswith("http://echo:")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert services["worker"]["stop_signal"] == "SIGTERM"
    grace = int(services["worker"]["stop_grace_period"].rstrip("s"))
    assert grace > settings.shutdown_s  # the orchestrator waits longer than our budget


def test_compose_starts_things_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["table"]["depends_on"]["moto"]["condition"] == "service_healthy"
    assert services["writer"]["depends_on"]["table"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["depends_on"]["writer"]["condition"] == (
        "service_completed_successfully"
    )


def test_the_fleet_target_adds_java_and_the_jars_only_there(dockerfile: str) -> None:
    fleet = _stage(dockerfile, "fleet")
    assert "openjdk-17-jre-headless" in fleet
    assert "COPY --from=fleet-build /src/kcl/target/lib /opt/orderstream/kcl/lib" in fleet
    assert "ORDERSTREAM_KCL_JARS=/opt/orderstream/kcl/lib" in fleet
    assert re.search(r"^USER 10001", fleet, re.M)  # back to non-root
    assert 'CMD ["kcl", "run"]' in fleet
    assert "openjdk" not in _stage(dockerfile, "runtime")
    builder = _stage(dockerfile, "fleet-build")
    assert "mvn -q -B -f kcl/pom.xml package" in builder
    assert "kcl/install-kclpy.sh" in builder


def test_a_plain_build_produces_the_small_image(dockerfile: str) -> None:
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", dockerfile, re.M)
    assert stages[-1] == ("runtime", "")  # the last stage is the default target
