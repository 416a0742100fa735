"""The AWS side of the environment, checked and worded the same way by both CLIs.

botocore fails late and loudly on some mistakes (an endpoint without a scheme is a
`ValueError` deep inside client creation) and words others for SDK users ("You must
specify a region."). These helpers give both tools one wording that names the variable
to fix, and say where a request went, since a table "missing" in the wrong region or
on the wrong endpoint is the usual cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

ENDPOINT_PREFIX = "AWS_ENDPOINT_URL"
NO_REGION = "no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)"
NO_CREDENTIALS = (
    "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)"
)


def endpoint_problem(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The first `AWS_ENDPOINT_URL*` variable that is not an http(s) URL, and why."""
    for name in sorted(k for k in env if k.startswith(ENDPOINT_PREFIX)):
        value = env[name].strip()
        if not value:
            continue
        try:
            parts = urlsplit(value)
            _ = parts.port  # urlsplit checks the port only when asked
        except ValueError as exc:
            return name, f"{value!r} is not a URL: {exc}"
        if "://" not in value:
            return name, f"{value!r} has no scheme (write http://{value})"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return name, f"{value!r} is not an http(s) URL with a host"
    return None


def location(region: str | None, endpoint: str | None) -> str:
    """Where requests go, for error messages: `region eu-west-1, https://...`."""
    return f"region {region or '?'}, {endpoint or 'the default endpoint'}"


def missing_table(table: str, region: str | None, endpoint: str | None) -> str:
    """A missing table, with where it was looked for and how to create it."""
    return (
        f"table {table!r} does not exist ({location(region, endpoint)}): create it with "
        "`writer create-table`, or check AWS_REGION and AWS_ENDPOINT_URL"
    )


def unreachable(service: str, endpoint: str | None) -> str:
    """An endpoint that did not answer, pointing at AWS_ENDPOINT_URL (the usual cause)."""
    return f"cannot reach {service} at {endpoint or 'its endpoint'} (check AWS_ENDPOINT_URL)"
