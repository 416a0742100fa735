"""The tests' own signature verifier is right: it is checked against RFC 4231."""

from __future__ import annotations

from tests.contract import hmac_sha256_hex, signature_of


def test_the_independent_hmac_matches_rfc_4231() -> None:
    # Test cases 2 (a short key) and 6 (a key longer than the block).
    assert hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert hmac_sha256_hex(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    ) == ("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_a_signature_names_its_algorithm_and_changes_with_the_body() -> None:
    assert signature_of("k", b"a").startswith("sha256=")
    assert signature_of("k", b"a") != signature_of("k", b"b")
