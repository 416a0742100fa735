"""Webhook signing (worker/delivery/sinks/signing.py): the `whsec_` secrets, the `v1` signatures
of Standard Webhooks checked two independent ways (the RFC 2104 HMAC of tests/contract.py
and the `standardwebhooks` package from PyPI), rotation, and the legacy header."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.contract import legacy_signature_of, standard_signature_of, whsec
from worker.delivery.sinks.signing import (
    LEGACY_SIGNATURE_HEADER,
    MAX_KEY_BYTES,
    MIN_KEY_BYTES,
    Signer,
    SigningKey,
    parse_secrets,
    sign_v1,
)

KEY = b"unit-test-signing-key-32-bytes!!"
OLD_KEY = b"the-previous-key-being-rotated-out"
BODY = b'{"type":"order.status_changed","id":"e1","amount":"50"}'


def now_s() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


# -- secrets ------------------------------------------------------------------------------


def test_a_whsec_secret_is_decoded_to_its_key() -> None:
    assert parse_secrets(whsec(KEY)) == (SigningKey(KEY),)


def test_comma_separated_secrets_are_kept_in_order_for_rotation() -> None:
    keys = parse_secrets(f" {whsec(KEY)} , {whsec(OLD_KEY)} ")
    assert [k.key for k in keys] == [KEY, OLD_KEY]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("change-me-a-plain-shared-secret", "whsec_<base64> form"),
        ("whsec_not base64!", "not valid base64"),
        (whsec(b"x" * (MIN_KEY_BYTES - 1)), f"decodes to {MIN_KEY_BYTES - 1} bytes"),
        (whsec(b"x" * (MAX_KEY_BYTES + 1)), f"decodes to {MAX_KEY_BYTES + 1} bytes"),
        (f"{whsec(KEY)},{whsec(KEY)}", "listed twice"),
        (f"{whsec(KEY)},", "secret 2 is not in the whsec_"),
        (" , ", "no secret given"),
    ],
)
def test_a_bad_secret_is_refused_without_being_echoed(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        parse_secrets(text)
    message = str(caught.value)
    for part in filter(None, (p.strip() for p in text.split(","))):
        assert part.removeprefix("whsec_")[:12] not in message


def test_a_plain_secret_is_refused_with_the_way_to_make_one() -> None:
    with pytest.raises(ValueError, match="make one with") as caught:
        parse_secrets("hunter2-plain-old-secret")
    assert "secrets.token_bytes(32)" in str(caught.value)


def test_key_sizes_of_the_specification_are_accepted() -> None:
    for size in (MIN_KEY_BYTES, MAX_KEY_BYTES):
        (key,) = parse_secrets(whsec(bytes(range(size))))
        assert len(key.key) == size


def test_a_key_never_shows_in_a_repr() -> None:
    keys = parse_secrets(whsec(KEY))
    assert "unit-test" not in repr(keys)
    assert base64.b64encode(KEY).decode()[:12] not in repr(keys)
    assert repr(keys[0]) == "SigningKey(***)"


# -- v1 signatures --------------------------------------------------------------------------


def test_v1_matches_an_independent_hmac() -> None:
    signature = sign_v1(SigningKey(KEY), "e1", 1_700_000_000, BODY)
    assert signature == standard_signature_of(KEY, "e1", "1700000000", BODY)


def test_v1_matches_the_reference_implementation() -> None:
    ours = sign_v1(SigningKey(KEY), "e1", 1_700_000_000, BODY)
    when = dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert ours == Webhook(whsec(KEY)).sign("e1", when, BODY.decode())


def test_the_reference_implementation_verifies_our_headers() -> None:
    headers = Signer(keys=(SigningKey(KEY),)).headers(msg_id="e1", timestamp=now_s(), body=BODY)
    assert Webhook(whsec(KEY)).verify(BODY, headers) == {
        "type": "order.status_changed",
        "id": "e1",
        "amount": "50",
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(OLD_KEY)).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(KEY)).verify(BODY.replace(b"50", b"5000"), headers)


def test_an_old_timestamp_is_refused_by_a_receiver() -> None:
    """What the legacy header cannot do: a request captured 10 minutes ago is refused."""
    signer = Signer(keys=(SigningKey(KEY),))
    headers = signer.headers(msg_id="e1", timestamp=now_s() - 600, body=BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(whsec(KEY)).verify(BODY, headers)


def test_the_headers_carry_the_id_and_the_timestamp() -> None:
    headers = Signer(keys=(SigningKey(KEY),)).headers(msg_id="e1", timestamp=17, body=BODY)
    assert headers == {
        "webhook-id": "e1",
        "webhook-timestamp": "17",
        "webhook-signature": standard_signature_of(KEY, "e1", "17", BODY),
    }


def test_rotation_sends_one_signature_per_key_each_verifying_alone() -> None:
    signer = Signer(keys=(SigningKey(KEY), SigningKey(OLD_KEY)))
    headers = signer.headers(msg_id="e1", timestamp=now_s(), body=BODY)
    first, second = headers["webhook-signature"].split(" ")
    assert first == standard_signature_of(KEY, "e1", headers["webhook-timestamp"], BODY)
    assert second == standard_signature_of(OLD_KEY, "e1", headers["webhook-timestamp"], BODY)
    Webhook(whsec(KEY)).verify(BODY, headers)
    Webhook(whsec(OLD_KEY)).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(b"a-third-key-nobody-signed-with!!")).verify(BODY, headers)


# -- the legacy header ----------------------------------------------------------------------


def test_no_legacy_header_unless_asked() -> None:
    headers = Signer(keys=(SigningKey(KEY),)).headers(msg_id="e1", timestamp=1, body=BODY)
    assert LEGACY_SIGNATURE_HEADER not in headers


def test_the_legacy_header_signs_the_body_with_the_first_key() -> None:
    signer = Signer(keys=(SigningKey(KEY), SigningKey(OLD_KEY)), legacy=True)
    headers = signer.headers(msg_id="e1", timestamp=1, body=BODY)
    assert headers[LEGACY_SIGNATURE_HEADER] == legacy_signature_of(KEY, BODY)
    assert headers["webhook-signature"].count("v1,") == 2  # the standard ones as well


def test_the_legacy_header_is_the_same_for_any_id_and_time() -> None:
    """Why it is legacy: nothing in it changes between attempts, so a replay verifies."""
    signer = Signer(keys=(SigningKey(KEY),), legacy=True)
    early = signer.headers(msg_id="e1", timestamp=1, body=BODY)
    late = signer.headers(msg_id="e2", timestamp=10**9, body=BODY)
    assert early[LEGACY_SIGNATURE_HEADER] == late[LEGACY_SIGNATURE_HEADER]
    assert early["webhook-signature"] != late["webhook-signature"]


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        Signer(keys=())
