"""The email sink and its templates: SES v2 raw messages from sandboxed Jinja2 templates,
permanent failures dead-lettered with the reason, throttling retried."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.fakes.aws_sinks import FakeSes
from tests.fakes.notify import notification
from tests.fakes.statetable import client_error
from worker.core.errors import ConfigError, DeliveryError
from worker.core.models import Notification, UserProfile
from worker.delivery.sinks.email import ID_HEADER, EmailSink
from worker.delivery.sinks.email_templates import EmailTemplates, TemplateProblemError
from worker.settings import WorkerSettings

ALICE = UserProfile("USR001", "Alice", "alice@email.com")
EMAIL_ENV = {"ORDERSTREAM_SINKS": "email", "ORDERSTREAM_EMAIL_FROM": "Shop <shop@example.com>"}


def change(new: str = "Shipped", user: UserProfile | None = ALICE, **kw: str) -> Notification:
    base = notification(order_id="ORD1002", old="Processing", new=new, user_id="USR001", **kw)
    return dataclasses.replace(base, user=user, looked_up=True)


def sink(ses: FakeSes, folder: Path | None = None) -> EmailSink:
    return EmailSink(client=ses, sender="Shop <shop@example.com>", templates=EmailTemplates(folder))


def test_a_change_is_one_email_to_the_profile_naming_the_order_and_status() -> None:
    ses = FakeSes()
    sink(ses).send(change())

    (sent,) = ses.sent
    assert sent.to == "alice@email.com"
    assert sent.sender == "Shop <shop@example.com>"
    assert "ORD1002" in sent.subject
    assert "ORD1002" in sent.text
    assert "Shipped" in sent.text
    assert "Hello Alice" in sent.text
    assert sent.html is None  # no .html template shipped: text only
    # The notification id travels in a header, so a mail log can dedupe re-sends.
    assert sent.notification_id == change().id
    assert sent.message["Message-ID"].startswith(f"<{change().id}@")
    assert ID_HEADER == "X-Orderstream-Notification-Id"


def test_a_status_without_its_own_template_uses_the_default() -> None:
    ses = FakeSes()
    sink(ses).send(change(new="Returned"))
    (sent,) = ses.sent
    assert sent.subject == "Your order ORD1002 is now Returned"
    assert "(it was Processing)" in sent.text


def test_a_user_without_a_profile_or_an_email_is_a_permanent_failure() -> None:
    ses = FakeSes()
    with pytest.raises(DeliveryError) as no_profile:
        sink(ses).send(change(user=None))
    with pytest.raises(DeliveryError) as no_email:
        sink(ses).send(change(user=UserProfile("USR001", "Alice", None)))

    assert not no_profile.value.transient
    assert "USR001 has no profile" in str(no_profile.value)
    assert not no_email.value.transient
    assert "no email address" in str(no_email.value)
    assert ses.calls == 0


@pytest.mark.parametrize(
    "address",
    [
        "alice@email.com, eve@evil.com",  # two recipients in one header
        "Eve <eve@evil.com>",
        "alice@email.com\nBcc: eve@evil.com",
        '"a@x"@evil.com',
        "alice@xn--bcher-kva.example, eve@evil.com",
        "alicé@bücher.example",  # SES takes no UTF-8 mailbox: punycode the domain
        "alice@localhost",
        f"{'a' * 250}@x.com",
    ],
)
def test_an_address_that_is_not_one_plain_address_is_dead_lettered(address: str) -> None:
    ses = FakeSes()
    with pytest.raises(DeliveryError) as caught:
        sink(ses).send(change(user=UserProfile("USR001", "Alice", address)))

    assert not caught.value.transient
    assert "is not one plain address" in str(caught.value)
    assert ses.calls == 0


def test_ses_is_told_the_one_recipient_whatever_the_headers_say() -> None:
    ses = FakeSes()
    sink(ses).send(change(user=UserProfile("USR001", "Alice", "o'brien+orders@xn--bcher-kva.ex")))

    (sent,) = ses.sent
    assert sent.destinations == ("o'brien+orders@xn--bcher-kva.ex",)
    assert sent.to == "o'brien+orders@xn--bcher-kva.ex"


def test_an_unread_profile_is_transient_not_a_missing_one() -> None:
    with pytest.raises(DeliveryError) as caught:
        sink(FakeSes()).send(dataclasses.replace(change(), looked_up=False, user=None))
    assert caught.value.transient


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("TooManyRequestsException", 429, True),
        ("LimitExceededException", 400, True),  # the daily quota: it resets
        ("SendingPausedException", 400, True),
        ("InternalFailure", 500, True),
        ("MessageRejected", 400, False),
        ("MailFromDomainNotVerifiedException", 400, False),
        ("BadRequestException", 400, False),
    ],
)
def test_ses_errors_are_classified(code: str, status: int, transient: bool) -> None:
    ses = FakeSes(fault=lambda _request: client_error("SendEmail", code, "no", status))
    with pytest.raises(DeliveryError) as caught:
        sink(ses).send(change())
    assert caught.value.transient is transient
    assert code in str(caught.value)


def test_an_unverified_sender_is_rejected_for_good() -> None:
    ses = FakeSes(verified=("other@example.com",))
    with pytest.raises(DeliveryError) as caught:
        sink(ses).send(change())
    assert not caught.value.transient
    assert "MessageRejected" in str(caught.value)


def test_a_folder_overrides_templates_file_by_file_and_adds_html(tmp_path: Path) -> None:
    (tmp_path / "Shipped.subject").write_text("Shipped: {{ order_id }}\n")
    (tmp_path / "Shipped.html").write_text("<p>Hi {{ user.name }}</p>\n")
    ses = FakeSes()
    evil = UserProfile("USR001", "<script>alert(1)</script>", "alice@email.com")
    sink(ses, tmp_path).send(change(user=evil))

    (sent,) = ses.sent
    assert sent.subject == "Shipped: ORD1002"
    assert "Good news" in sent.text  # Shipped.txt still the shipped one
    assert sent.html is not None
    assert "&lt;script&gt;" in sent.html  # .html is autoescaped
    assert "<script>" in sent.text  # .txt is not: it is not HTML


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "Cancelled.txt").write_text("Hello\n\nYour order\n{{ order_id | }}\n")
    with pytest.raises(TemplateProblemError) as caught:
        EmailTemplates(tmp_path).check()
    assert str(caught.value).startswith(f"{tmp_path / 'Cancelled.txt'}:4: ")

    with pytest.raises(ConfigError) as config:
        WorkerSettings.from_env({**EMAIL_ENV, "ORDERSTREAM_EMAIL_TEMPLATES": str(tmp_path)})
    assert config.value.setting == "ORDERSTREAM_EMAIL_TEMPLATES"
    assert config.value.exit_code == 2
    assert "Cancelled.txt:4:" in str(config.value)


def test_an_undefined_variable_fails_at_start_up_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "default.txt").write_text("Order {{ order_id }}\n{{ order.total }}\n")
    with pytest.raises(TemplateProblemError) as caught:
        EmailTemplates(tmp_path).check()
    assert f"{tmp_path / 'default.txt'}:2: " in str(caught.value)
    assert "order" in str(caught.value)


def test_the_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    (tmp_path / "default.txt").write_text("{{ user.__class__.__mro__ }}\n")
    with pytest.raises(TemplateProblemError):
        EmailTemplates(tmp_path).check()


def test_a_file_that_is_no_template_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Shiped.text").write_text("typo\n")
    with pytest.raises(TemplateProblemError) as caught:
        EmailTemplates(tmp_path).check()
    assert "Shiped.text" in str(caught.value)


def test_the_shipped_templates_pass_their_own_check() -> None:
    templates = EmailTemplates()
    templates.check()
    assert "default.subject" in templates.names()
    assert "default.txt" in templates.names()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"Total: {{ amount + 1 }}\n", "default.txt:1: "),  # a TypeError, not a TemplateError
        (b"Hello \xff\xfe\n", "default.txt: cannot read: "),  # not UTF-8
    ],
)
def test_any_template_failure_at_start_up_is_exit_2_with_its_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """Found by an attack on issue 17: these escaped as a traceback and exit 1."""
    (tmp_path / "default.txt").write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({**EMAIL_ENV, "ORDERSTREAM_EMAIL_TEMPLATES": str(tmp_path)})
    assert caught.value.exit_code == 2
    assert f"{tmp_path / problem}" in str(caught.value)


def test_a_template_the_changes_data_breaks_is_dead_lettered_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "Shipped.txt").write_text("{{ (order_id | int) // 0 }}\n")
    templates = EmailTemplates(tmp_path)
    with pytest.raises(DeliveryError) as caught:
        EmailSink(client=FakeSes(), sender="shop@example.com", templates=templates).send(change())
    assert not caught.value.transient
    assert "template failed" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        "{{ " + "(" * 120 + "1" + ")" * 120 + " }}\n",  # RecursionError in Jinja2's parser
        "{% if 1 %}" * 120 + "x" + "{% endif %}" * 120 + "\n",  # Python's compile gives up
    ],
)
def test_a_template_nested_past_what_compiles_is_exit_2_with_its_file(
    tmp_path: Path, content: str
) -> None:
    """Found by an attack on issue 17: these escaped as a 3,000-line traceback, exit 1."""
    (tmp_path / "Shipped.txt").write_text(content)
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({**EMAIL_ENV, "ORDERSTREAM_EMAIL_TEMPLATES": str(tmp_path)})
    assert caught.value.exit_code == 2
    assert f"{tmp_path / 'Shipped.txt'}: cannot compile" in str(caught.value)
