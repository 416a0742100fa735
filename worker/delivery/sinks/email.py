"""The email sink: SES v2 `SendEmail` to the user's address, from per-status templates.

The message is sent raw (MIME built here) so it can carry the notification id in a
header (`X-Orderstream-Notification-Id`, also the `Message-ID`'s left part): a mail log
or a receiving system dedupes the re-sends that at-least-once delivery allows.
Throttling, the sending quota and a paused account are transient (retried, then the
retry lane); a message SES rejects (an unverified sender included), a user with no
profile or no address, or a template the change's data breaks are permanent: dead-
lettered at once with the reason, for `worker dlq redrive` once it is fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import TemplateError

from worker.core.errors import DeliveryError
from worker.core.models import Notification
from worker.delivery.sinks.aws_errors import delivery_error
from worker.delivery.sinks.email_templates import EmailTemplates, RenderedEmail

if TYPE_CHECKING:
    from mypy_boto3_sesv2.type_defs import DestinationTypeDef, EmailContentTypeDef

ID_HEADER = "X-Orderstream-Notification-Id"
# One plain address (RFC 5321 dot-atom @ host name), ASCII only: a profile is written by
# any client, and "a@x.com, eve@evil.com" or "Eve <eve@evil.com>" must never widen the
# recipients. SES takes no UTF-8 mailbox; an IDN domain must be stored as punycode.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit


class EmailClient(Protocol):
    """The one SES v2 call the email sink makes: the boto3 client, or a fake."""

    def send_email(
        self,
        *,
        FromEmailAddress: str,  # noqa: N803 (boto3's names)
        Destination: DestinationTypeDef,  # noqa: N803
        Content: EmailContentTypeDef,  # noqa: N803
    ) -> Mapping[str, Any]:
        """Send one raw message."""
        ...


class EmailSink:
    """SES v2 raw `SendEmail` to the user's address: needs the profile (`EnrichedSink` reads it)."""

    name = "email"
    local = False

    def __init__(self, *, client: EmailClient, sender: str, templates: EmailTemplates) -> None:
        """`sender` is ORDERSTREAM_EMAIL_FROM (`shop@example.com` or `Shop
        <shop@example.com>`), checked at start-up; `templates` checked too."""
        self._client = client
        self._sender = sender
        self._domain = parseaddr(sender)[1].rpartition("@")[2] or "orderstream"
        self._templates = templates

    def send(self, notification: Notification) -> None:
        """One raw SendEmail; a missing address, a template error or a rejection is permanent."""
        address = self._address(notification)
        assert notification.user is not None  # _address checked it
        try:
            rendered = self._templates.render(notification, notification.user)
        except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            # The change's own data broke a template (`{{ amount + 1 }}` on a string
            # amount is a TypeError): the same data breaks it again, so not retried.
            raise DeliveryError(f"email: template failed: {exc}", transient=False) from exc
        raw = self._mime(notification, address, rendered)
        try:
            self._client.send_email(
                FromEmailAddress=self._sender,
                Destination={
                    "ToAddresses": [address]
                },  # SES mails this one, whatever the MIME says
                Content={"Raw": {"Data": raw}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise delivery_error("email", exc) from exc

    @staticmethod
    def _address(notification: Notification) -> str:
        if not notification.looked_up:
            # The enrichment wrapper looks it up first; not read means it could not be.
            raise DeliveryError("email: the user's profile was not read", transient=True)
        user = notification.user
        if user is None:
            raise DeliveryError(
                f"email: user {notification.user_id} has no profile (no PROFILE item)",
                transient=False,
            )
        if not user.email:
            raise DeliveryError(
                f"email: user {notification.user_id} has no email address", transient=False
            )
        if len(user.email) > MAX_ADDRESS_LENGTH or not PLAIN_ADDRESS.fullmatch(user.email):
            why = "not ASCII (store an IDN domain as punycode)" if not user.email.isascii() else ""
            raise DeliveryError(
                f"email: user {notification.user_id}'s email {user.email[:80]!r} is not one "
                f"plain address{': ' + why if why else ''}",
                transient=False,
            )
        return user.email

    def _mime(self, notification: Notification, address: str, rendered: RenderedEmail) -> bytes:
        message = EmailMessage(policy=SMTP)
        try:
            message["From"] = self._sender
            message["To"] = address
            message["Subject"] = rendered.subject
            message["Message-ID"] = f"<{notification.id}@{self._domain}>"
            message[ID_HEADER] = notification.id
        except ValueError as exc:  # a header that would not be one line (injection)
            raise DeliveryError(f"email: invalid header: {exc}", transient=False) from exc
        message.set_content(rendered.text)
        if rendered.html is not None:
            message.add_alternative(rendered.html, subtype="html")
        return message.as_bytes()

    def flush(self) -> None:
        """Nothing buffered: SES acknowledged each send."""
        return None  # each send is acknowledged by SES

    def close(self) -> None:
        """Nothing to close: the sink keeps no connection or buffer of its own."""
        return None
