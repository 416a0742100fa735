"""`worker demo` on its embedded moto server, exactly as `make demo` runs it."""

from __future__ import annotations

import json
import os
import subprocess

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
    assert "127.0.0.1" in result.stdout  # the embedded server is on loopback
