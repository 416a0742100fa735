"""Webhook signing: Standard Webhooks `v1` signatures, and the legacy body-only one.

A `v1` signature covers `{webhook-id}.{webhook-timestamp}.{body}`, so a receiver that
checks the timestamp's age and remembers ids refuses a captured request replayed later.
The legacy `X-Orderstream-Signature` covers the body alone: a captured request verifies
forever, which is why it is only sent when an operator asks for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of the form, not a secret
# The Standard Webhooks specification: a random symmetric secret of 24 to 64 bytes.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
LEGACY_SIGNATURE_HEADER = "X-Orderstream-Signature"
HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, LEGACY_SIGNATURE_HEADER)
MAKE_ONE = (
    "python3 -c \"import base64,secrets; print('whsec_' + "
    'base64.b64encode(secrets.token_bytes(32)).decode())"'
)


@dataclass(frozen=True)
class SigningKey:
    """One HMAC key, decoded from its `whsec_` form; never shown in a repr or a log."""

    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "SigningKey(***)"


def parse_secrets(text: str) -> tuple[SigningKey, ...]:
    """`whsec_<base64>` secrets, comma-separated for rotation; the first signs the legacy
    header. Errors say which secret (by position) and why, never its value."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError("no secret given (whsec_<base64>, comma-separated for rotation)")
    keys = tuple(_decode(part, position) for position, part in enumerate(parts, 1))
    if len(set(keys)) != len(keys):
        raise ValueError("the same secret is listed twice")
    return keys


def _decode(part: str, position: int) -> SigningKey:
    where = f"secret {position}"
    if not part.startswith(SECRET_PREFIX):
        raise ValueError(
            f"{where} is not in the whsec_<base64> form of Standard Webhooks; make one "
            f"with: {MAKE_ONE} (to keep an existing key, use whsec_ and its bytes in base64)"
        )
    try:
        key = base64.b64decode(part.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the text after whsec_ is not valid base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"{where} decodes to {len(key)} bytes; Standard Webhooks keys are "
            f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes"
        )
    return SigningKey(key)


def sign_v1(key: SigningKey, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` over the raw body bytes."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key.key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_legacy(key: SigningKey, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`: the pre-Standard-Webhooks header."""
    return "sha256=" + hmac.new(key.key, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Signer:
    """The signature headers of one request: one `v1` signature per key (rotation), and
    the legacy header too when `legacy` is on."""

    keys: tuple[SigningKey, ...]
    legacy: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a Signer needs at least one key")

    def headers(self, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """`timestamp` is the attempt's (unix seconds): a retry is signed afresh, so a
        receiver's age check accepts a late retry or a redrive under the same id. The id
        is the stream record's eventID, set by DynamoDB: no writer of the table chooses it
        (the spec asks that ids not be user controlled)."""
        signatures = " ".join(sign_v1(key, msg_id, timestamp, body) for key in self.keys)
        headers = {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signatures,
        }
        if self.legacy:
            headers[LEGACY_SIGNATURE_HEADER] = sign_legacy(self.keys[0], body)
        return headers
