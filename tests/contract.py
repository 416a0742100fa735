"""What docs/design.md promises, written down once for the tests that check it.

Independent of the worker's code on purpose: the body fields of section 6, the
`worker dlq list --json` fields, the timestamp form, and an HMAC-SHA256 written out from
RFC 2104 (not the `hmac` module the webhook sink uses) to verify signatures. The
`standardwebhooks` package from PyPI is a second, outside check of the `v1` signatures.
"""

from __future__ import annotations

import base64
import hashlib
import re

# docs/design.md section 6, in the order of its example.
BODY_KEYS = (
    "type",
    "id",
    "occurred_at",
    "user_id",
    "order_id",
    "old_status",
    "new_status",
    "amount",
    "shard_id",
    "sequence_number",
)
# `worker dlq list --json`: what issue 4 asks a dead letter to carry.
DLQ_LIST_FIELDS = frozenset(
    {
        "id",
        "sink",
        "order_id",
        "attempts",
        "error",
        "first_attempt_at",
        "last_attempt_at",
        "shard_id",
        "sequence_number",
        "body",
    }
)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 from RFC 2104, independent of the `hmac` module."""
    block = 64  # SHA-256's block size in bytes
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def hmac_sha256_hex(key: bytes, message: bytes) -> str:
    return hmac_sha256(key, message).hex()


def whsec(key: bytes) -> str:
    """A key in the Standard Webhooks secret form, as ORDERSTREAM_WEBHOOK_SECRET takes it."""
    return "whsec_" + base64.b64encode(key).decode()


def standard_signature_of(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """One `webhook-signature` entry: `v1,<base64 HMAC of "{id}.{timestamp}.{body}">`."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac_sha256(key, signed)).decode()


def legacy_signature_of(key: bytes, body: bytes) -> str:
    """The legacy `X-Orderstream-Signature` value a receiver expects for `body`."""
    return "sha256=" + hmac_sha256_hex(key, body)
