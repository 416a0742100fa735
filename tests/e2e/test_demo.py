"""`worker demo` on its embedded moto server, exactly as `make demo` runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAFE_AWS_ENV
from tests.fakes.processes import BIN, script


def test_demo_shows_the_seed_scenario_end_to_end_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ORDERSTREAM_"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AWS_EC2_METADATA_DISABLED": SAFE_AWS_ENV["AWS_EC2_METADATA_DISABLED"],
        }
    )
    result = subprocess.run(
        [script("worker"), "demo"], env=env, capture_output=True, text=True, timeout=90, check=False
    )

    assert result.returncode == 0, result.stderr
    bodies = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if line.startswith('{"type": "order.status_changed"')
    ]
    changes = [(b["order_id"], b["old_status"], b["new_status"]) for b in bodies]
    # Different orders are dispatched concurrently, so only the set is fixed.
    assert sorted(changes[3:]) == [
        ("ORD1001", "Shipped", "Delivered"),
        ("ORD1002", "Processing", "Shipped"),
        ("ORD1004", None, "Pending"),
    ]
    assert sorted(changes[:3]) == [
        ("ORD1001", None, "Shipped"),
        ("ORD1002", None, "Processing"),
        ("ORD1003", None, "Delivered"),
    ]
    assert "6 notifications, stopped gracefully" in result.stdout
    # The shipment also went out by email and to EventBridge (ORDERSTREAM_ROUTES).
    lines = result.stdout.splitlines()
    assert "email sent to alice@email.com: Your order ORD1002 has shipped" in lines
    assert "event put on bus default: ORD1002 Processing -> Shipped (user Alice)" in lines
    assert "127.0.0.1" in result.stdout  # the embedded server is on loopback
    # It ends with what to try next: three commands.
    tail = result.stdout.split("next, try:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in tail] == [
        ".venv/bin/worker",
        ".venv/bin/writer",
        "less",
    ]


ROOT = Path(__file__).resolve().parents[2]


def make_dry_run(*targets: str) -> str:
    """What `make` would run (`-B`: as on a fresh clone), without running it."""
    result = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_make_demo_builds_no_java_and_says_what_it_installs() -> None:
    demo = make_dry_run("demo")
    assert "mvn" not in demo
    assert "install-kclpy" not in demo
    assert 'echo "make: creating .venv and installing orderstream' in demo
    assert "[local]" in demo
    assert "[local,test,dev]" not in demo  # the test and lint tools come with `make test`


def test_make_test_builds_fleet_mode_quietly_and_without_colours() -> None:
    if not shutil.which("mvn"):
        pytest.skip("no mvn: `make fleet` skips fleet mode with a note")
    fleet = make_dry_run("test")
    mvn = [line for line in fleet.splitlines() if "mvn" in line and "-f kcl/pom.xml" in line]
    assert mvn
    assert all(" -B " in line and "-Dstyle.color=never" in line for line in mvn)
    assert 'MVN="mvn -q -B -Dstyle.color=never"' in fleet  # kcl/install-kclpy.sh's too
