"""The container's health probe: `python -m worker.ops.probe` asks /healthz where the worker
serves it, as ORDERSTREAM_HTTP_HOST and ORDERSTREAM_HTTP_PORT say.

The Dockerfile's HEALTHCHECK used to probe port 8080 whatever the settings, so an
image run with another port, or with the endpoint off, was marked unhealthy. With
ORDERSTREAM_HTTP_PORT=0 (no endpoint) there is nothing to ask: the probe succeeds, and
a worker that dies is seen by its exit, as in fleet mode. Standard library only: it
runs every few seconds and must start fast.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence

TIMEOUT_S = 2.0


def probe_url(env: Mapping[str, str]) -> str | None:
    """Where /healthz is, or None when the endpoint is off (port 0 or unset)."""
    port = int(env.get("ORDERSTREAM_HTTP_PORT", "0").strip() or "0")
    if port == 0:
        return None
    host = env.get("ORDERSTREAM_HTTP_HOST", "").strip() or "0.0.0.0"  # noqa: S104 - compared, not bound
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}/healthz"  # `localhost`
    if address.is_unspecified:  # bound to every interface: loopback is one of them
        host = "::1" if address.version == 6 else "127.0.0.1"
    if ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """0 when healthy (or nothing to probe), 1 otherwise: the HEALTHCHECK contract."""
    del argv
    try:
        url = probe_url(os.environ if env is None else env)
    except ValueError:
        return 1  # a port that is not a number: the worker refused it too
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - http only, built above
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
