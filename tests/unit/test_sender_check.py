"""The start-up check of the email sender: SES must have ORDERSTREAM_EMAIL_FROM's address
or its domain verified, else every email would be dead-lettered; a warning says so
before the first change does."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.fakes.statetable import client_error
from worker.ops.startup import report_email_sender
from worker.settings import WorkerSettings

EMAIL_ENV = {"ORDERSTREAM_SINKS": "email", "ORDERSTREAM_EMAIL_FROM": "Shop <shop@example.com>"}


class Identities:
    """Stands in for SES v2's GetEmailIdentity: `verified` maps identity -> status;
    an identity absent is NotFoundException, `denied` raises AccessDenied for all."""

    def __init__(self, verified: dict[str, bool | str], *, denied: bool = False) -> None:
        self.verified = verified
        self.denied = denied
        self.asked: list[str] = []

    def get_email_identity(self, *, EmailIdentity: str) -> dict[str, Any]:  # noqa: N803
        self.asked.append(EmailIdentity)
        if self.denied:
            raise client_error("GetEmailIdentity", "AccessDeniedException", status=403)
        if EmailIdentity not in self.verified:
            raise client_error("GetEmailIdentity", "NotFoundException", status=404)
        status = self.verified[EmailIdentity]
        if status == "SUCCESS":  # moto's answer for an address verified with SES v1
            return {"VerifiedForSendingStatus": False, "VerificationStatus": "SUCCESS"}
        return {"VerifiedForSendingStatus": status}


@pytest.mark.parametrize(
    ("verified", "answer"),
    [
        ({"shop@example.com": True}, True),
        ({"example.com": True}, True),  # the domain verifies every address of it
        ({"shop@example.com": False}, False),  # created, not yet confirmed
        ({}, False),
        ({"shop@example.com": "SUCCESS"}, True),
    ],
)
def test_the_sender_or_its_domain_must_be_verified(
    verified: dict[str, bool | str], answer: bool
) -> None:
    settings = WorkerSettings.from_env(EMAIL_ENV)
    with capture_logs() as logged:
        assert report_email_sender(settings, Identities(verified)) is answer
    warned = [e for e in logged if e["event"] == "email.sender_unverified"]
    assert len(warned) == (0 if answer else 1)
    if warned:
        assert warned[0]["sender"] == "shop@example.com"


def test_without_permission_to_look_it_is_unchecked_not_a_warning() -> None:
    settings = WorkerSettings.from_env(EMAIL_ENV)
    with capture_logs() as logged:
        assert report_email_sender(settings, Identities({}, denied=True)) is None
    assert [e["event"] for e in logged] == ["email.sender_unchecked"]


def test_without_the_email_sink_ses_is_not_asked() -> None:
    ses = Identities({})
    assert report_email_sender(WorkerSettings.from_env({}), ses) is None
    assert ses.asked == []
