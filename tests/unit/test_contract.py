"""The tests' own signature verifier is right: it is checked against RFC 4231."""

from __future__ import annotations

import base64

from tests.contract import hmac_sha256_hex, legacy_signature_of, standard_signature_of, whsec


def test_the_independent_hmac_matches_rfc_4231() -> None:
    # Test cases 2 (a short key) and 6 (a key longer than the block).
    assert hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert hmac_sha256_hex(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    ) == ("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_a_legacy_signature_names_its_algorithm_and_changes_with_the_body() -> None:
    assert legacy_signature_of(b"k", b"a").startswith("sha256=")
    assert legacy_signature_of(b"k", b"a") != legacy_signature_of(b"k", b"b")


def test_a_standard_signature_covers_the_id_the_timestamp_and_the_body() -> None:
    first = standard_signature_of(b"k", "msg_1", "1700000000", b"{}")
    assert first.startswith("v1,")
    assert len(base64.b64decode(first[3:], validate=True)) == 32  # a SHA-256 digest
    assert first != standard_signature_of(b"k", "msg_2", "1700000000", b"{}")
    assert first != standard_signature_of(b"k", "msg_1", "1700000001", b"{}")
    assert first != standard_signature_of(b"k", "msg_1", "1700000000", b"{ }")


def test_whsec_is_the_prefix_and_the_key_in_base64() -> None:
    assert whsec(b"\x00\xff") == "whsec_AP8="
