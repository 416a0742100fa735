"""The Dockerfile's install steps, run in a fresh virtual environment, and the result started.

There is no Docker engine here, so this test executes what the image build executes:
the build stage's COPY set into a scratch folder, its RUN line (with /opt/orderstream
moved under tmp_path: the locked, hashed dependencies from PyPI, then the project with
no dependency resolution), then the runtime stage's ENV, ENTRYPOINT/CMD and HEALTHCHECK,
which must follow ORDERSTREAM_HTTP_PORT.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MotoServer, free_port, wait_until
from tests.fakes.processes import ScriptProcess

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _instructions(stage: str) -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    body = re.search(rf"^FROM \S+ AS {stage}\n(.*?)(?=^FROM |\Z)", text, re.S | re.M)
    assert body, stage
    lines = [line.strip() for line in body.group(1).splitlines()]
    return [tuple(line.split(" ", 1)) for line in lines if line and not line.startswith("#")]


@pytest.mark.timeout(600)
def test_the_image_install_steps_build_a_worker_that_starts_and_is_healthy(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    src, prefix = tmp_path / "src", tmp_path / "opt" / "orderstream"
    src.mkdir()
    build = _instructions("build")
    for kind, args in build:
        if kind == "COPY":
            *sources, _target = args.split()
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(
                        path, src / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(path, src / source)
    run = [args for kind, args in build if kind == "RUN"]
    assert len(run) == 1
    command = (
        run[0]
        .replace("/opt/orderstream", str(prefix))
        .replace("python -m venv", f"{sys.executable} -m venv")
    )
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        ["bash", "-c", command], cwd=src, env=env, check=True, timeout=540, capture_output=True
    )

    runtime = dict(_instructions("runtime"))
    entrypoint, cmd = json.loads(runtime["ENTRYPOINT"]), json.loads(runtime["CMD"])
    assert entrypoint == ["worker"]
    assert cmd == ["run"]
    port = free_port()
    worker_env = {
        **moto_server.env(),
        "PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "ORDERSTREAM_LOG_FORMAT": "json",
        "ORDERSTREAM_HTTP_PORT": str(port),
    }
    subprocess.run(
        [str(prefix / "bin" / "writer"), "create-table"],
        env=worker_env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    worker = ScriptProcess([str(prefix / "bin" / entrypoint[0]), *cmd], worker_env)
    try:
        # The HEALTHCHECK as the engine runs it: the image's python, the container's env.
        healthcheck = json.loads(runtime["HEALTHCHECK"].split("CMD", 1)[1].strip())
        assert healthcheck[0] == "python"
        healthcheck = [str(prefix / "bin" / "python"), *healthcheck[1:]]

        def health(env: dict[str, str]) -> int:
            probe = subprocess.run(
                healthcheck, env=env, check=False, capture_output=True, timeout=10
            )
            return probe.returncode

        # The worker's port is not the image's 8080: the probe follows the setting.
        wait_until(lambda: health(worker_env) == 0, timeout=30, interval=0.2)
        wait_until(lambda: worker.named("shard.started"), timeout=30)
        assert health({**worker_env, "ORDERSTREAM_HTTP_PORT": str(free_port())}) == 1
        assert health({**worker_env, "ORDERSTREAM_HTTP_PORT": "0"}) == 0  # endpoint off
        worker.signal(15)
        assert worker.wait(timeout=25) == 0
    finally:
        worker.stop()
    # Only what the lock pins was installed, plus the project itself.
    frozen = subprocess.run(
        [str(prefix / "bin" / "python"), "-m", "pip", "freeze", "--all"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout

    def name(line: str) -> str:
        return re.sub(r"[-_.]+", "-", line.split("==", maxsplit=1)[0]).lower()

    installed = {name(line) for line in frozen.splitlines() if "==" in line}
    lock = (ROOT / "requirements.lock").read_text()
    locked = {name(line) for line in lock.splitlines() if line[:1].isalpha()}
    assert "urllib3" in installed
    assert installed - locked <= {"orderstream", "pip"}
