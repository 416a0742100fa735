"""The webhook sink: a signed JSON POST over pooled connections (urllib3)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

from worker.core.errors import DeliveryError
from worker.core.models import Notification
from worker.delivery.sinks.signing import HEADERS as SIGNING_HEADERS
from worker.delivery.sinks.signing import Signer

RETRYABLE_STATUS = frozenset({408, 425, 429})
OWN_HEADERS = ("Content-Type", "Idempotency-Key", "User-Agent", *SIGNING_HEADERS)
CONNECT_TIMEOUT_S = 5.0
# The most of a response body ever read. The body is not used (the status decides), but
# reading a little lets a small keep-alive answer go back to the pool; past this bound
# the connection is dropped, so a receiver answering with gigabytes costs 16 KiB, not
# the worker's memory (times ORDERSTREAM_CONCURRENCY).
MAX_RESPONSE_BYTES = 16 * 1024


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
    """A JSON POST per notification, signed when a secret is set; the HTTP status decides."""

    name = "webhook"
    local = False

    def __init__(
        self,
        url: str,
        signer: Signer | None,
        timeout_s: float,
        verify_tls: bool = True,
        pool_size: int = 32,
        *,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`signer` None sends unsigned; `headers` are the operator's extra headers
        (checked by webhook_headers); `clock` gives each attempt's webhook-timestamp."""
        self._url = url
        self._signer = signer
        self._clock = clock
        # Settings refuse our names already; dropping them here too (in any case) means
        # no caller can send a second Content-Type or a forged Idempotency-Key.
        ours = {name.lower() for name in OWN_HEADERS}
        self._extra_headers = {
            name: value for name, value in (headers or {}).items() if name.lower() not in ours
        }
        self._timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=timeout_s)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=False,
            cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
        )

    def send(self, notification: Notification) -> None:
        """One POST, no retry or redirect: 408/425/429/5xx transient, 410 gone, else permanent."""
        body = notification.to_json().encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notification.id,
            "User-Agent": "orderstream",
        }
        if self._signer is not None:
            now = int(self._clock())
            headers.update(self._signer.headers(msg_id=notification.id, timestamp=now, body=body))
        headers.update(self._extra_headers)
        try:
            response: Any = self._pool.request(
                "POST",
                self._url,
                body=body,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
                preload_content=False,
            )
        except HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}", transient=True) from exc
        _read_bounded(response)
        status = int(response.status)
        if 200 <= status < 300:
            return
        message = f"webhook: HTTP {status}"
        if status in RETRYABLE_STATUS or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            raise DeliveryError(message, transient=True, retry_after_s=wait)
        if status == 410:  # the receiver says this endpoint is gone for good
            raise DeliveryError(f"{message} Gone", transient=False, gone=True)
        raise DeliveryError(message, transient=False)

    def flush(self) -> None:
        """Nothing buffered: the receiver answered each POST."""
        return None  # each send is acknowledged by the receiver

    def close(self) -> None:
        """Drop the pooled connections."""
        self._pool.clear()


def _read_bounded(response: Any) -> None:
    """Read at most MAX_RESPONSE_BYTES of the body, never decompressed, then hand the
    connection back. A body that ended within the bound leaves the connection reusable;
    a longer one (or a broken one) closes it instead of reading on. The status has
    already arrived, so nothing here changes the outcome of the delivery."""
    try:
        complete = len(response.read(MAX_RESPONSE_BYTES + 1, decode_content=False)) <= (
            MAX_RESPONSE_BYTES
        )
    except HTTPError:
        complete = False
    if not complete:
        response.close()  # closes the socket: the rest of the body is never read
    response.release_conn()
