"""The webhook sink: a signed JSON POST over pooled connections (urllib3)."""

from __future__ import annotations

import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

from worker.errors import DeliveryError
from worker.models import Notification

RETRYABLE_STATUS = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Orderstream-Signature"
CONNECT_TIMEOUT_S = 5.0


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, as receivers verify it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def retry_after_seconds(value: str | None, now_s: float) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_s)
    except (TypeError, ValueError):
        return None


class WebhookSink:
    name = "webhook"
    local = False

    def __init__(
        self,
        url: str,
        secret: str | None,
        timeout_s: float,
        verify_tls: bool = True,
        pool_size: int = 32,
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=timeout_s)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=False,
            cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
        )

    def send(self, notification: Notification) -> None:
        body = notification.to_json().encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notification.id,
            "User-Agent": "orderstream",
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            response: Any = self._pool.request(
                "POST",
                self._url,
                body=body,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}", transient=True) from exc
        status = int(response.status)
        if 200 <= status < 300:
            return
        message = f"webhook: HTTP {status}"
        if status in RETRYABLE_STATUS or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            raise DeliveryError(message, transient=True, retry_after_s=wait)
        raise DeliveryError(message, transient=False)

    def flush(self) -> None:
        return None  # each send is acknowledged by the receiver

    def close(self) -> None:
        self._pool.clear()
