"""The Dockerfile's install steps, run in a fresh virtual environment, and the result started.

There is no Docker engine here, so this test executes what the image build executes:
the build stage's COPY set into a scratch folder, its RUN line (with /opt/orderstream
moved under tmp_path), then the runtime stage's ENV, ENTRYPOINT/CMD and HEALTHCHECK.
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
    return [tuple(line.split(" ", 1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


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
        healthcheck = json.loads(runtime["HEALTHCHECK"].split("CMD", 1)[1].strip())
        healthcheck = [str(prefix / "bin" / "python"), *healthcheck[1:]]
        healthcheck[-1] = healthcheck[-1].replace(":8080/", f":{port}/")

        def healthy() -> bool:
            probe = subprocess.run(healthcheck, check=False, capture_output=True, timeout=10)
            return probe.returncode == 0

        wait_until(healthy, timeout=30, interval=0.2)
        wait_until(lambda: worker.named("shard.started"), timeout=30)
        worker.signal(15)
        assert worker.wait(timeout=25) == 0
    finally:
        worker.stop()
