"""ORDERSTREAM_WEBHOOK_URL is read with the parser that sends (urllib3): a table of inputs.

Every case runs through `WorkerSettings.from_env`, as `worker run` does, so the verdict
is the one that decides whether the worker starts. For the URLs that are accepted, the
test also checks that urllib3 (what WebhookSink calls) connects to the host the rule
judged, and that the start-up log shows that same host.
"""

from __future__ import annotations

import pytest
from urllib3.util import parse_url

from worker.core.errors import ConfigError
from worker.delivery.sinks.webhook_target import is_loopback, loggable_url, parse_target
from worker.settings import WorkerSettings

SETTING = "ORDERSTREAM_WEBHOOK_URL"

# (url, allow_http, why it is refused: a piece of the one-line message)
REFUSED: list[tuple[str, bool, str]] = [
    # The review's parser differentials: urlsplit saw localhost, urllib3 sent elsewhere.
    ("http://attacker.invalid\\@localhost/orders", False, "ambiguous"),
    ("http://evil.com:80\\@localhost:80/", False, "ambiguous"),
    ("http://evil.com\\@127.0.0.1/", False, "ambiguous"),
    # ... and the same with http allowed or https: still refused, the host is unclear.
    ("http://attacker.invalid\\@localhost/orders", True, "ambiguous"),
    ("https://evil.com\\@hooks.example.com/", False, "ambiguous"),
    ("https://hooks.example.com/a\\b", False, "ambiguous"),
    # Whitespace and controls: urlsplit silently drops tabs and newlines.
    ("http://local\thost/", False, "ambiguous"),
    ("https://hooks.example.com/a\nb", False, "ambiguous"),
    ("https://hooks.example.com/a b", False, "ambiguous"),
    ("https://hooks.example.com/\x7f", False, "ambiguous"),
    # A percent-escape in the host: urllib3 2.8 decodes it, 2.5 and urlsplit do not.
    ("http://evil%2ecom/", True, "percent-escape"),
    ("https://127.0.0.1%2eevil.com/", False, "percent-escape"),
    ("http://[::1%25lo]:9/", False, "percent-escape"),
    # Userinfo of any shape: urllib3 never sends it, so it is refused with a hint.
    ("https://user:s3cretPw@hooks.example.com/hook", False, "ORDERSTREAM_WEBHOOK_HEADERS"),
    ("https://user@hooks.example.com/hook", False, "ORDERSTREAM_WEBHOOK_HEADERS"),
    ("https://:s3cretPw@hooks.example.com/hook", False, "ORDERSTREAM_WEBHOOK_HEADERS"),
    ("http://evil.com@localhost/", False, "ORDERSTREAM_WEBHOOK_HEADERS"),
    ("https://@hooks.example.com/", False, "ORDERSTREAM_WEBHOOK_HEADERS"),
    # Look-alikes of loopback stay plain remote hosts: https required.
    ("http://localhost.example.com/", False, "must be https"),
    ("http://127.0.0.1.nip.io/", False, "must be https"),
    ("http://[::ffff:127.0.0.1]/", False, "must be https"),
    ("http://0x7f000001/", False, "must be https"),
    ("http://2130706433/", False, "must be https"),
    ("http://127.1/", False, "must be https"),
    ("http://hooks.example.com/x", False, "must be https"),
    # Not http(s), no host, bad port.
    ("ftp://hooks.example.com/x", False, "http(s) URL with a host"),
    ("hooks.example.com/x", False, "no scheme; start it with https://"),
    ("127.0.0.1:8080/hook", False, "no scheme; start it with https://"),
    ("https://", False, "http(s) URL with a host"),
    ("https:///path", False, "http(s) URL with a host"),
    ("http://127.0.0.1:99999/hook", False, "not a URL"),
    ("http://127.0.0.1:port/hook", False, "not a URL"),
    ("https://[::1/hook", False, "not a URL"),
]

# (url, allow_http, the host and port urllib3 connects to, the logged form)
ACCEPTED: list[tuple[str, bool, str, int | None, str]] = [
    ("http://localhost:9/h", False, "localhost", 9, "http://localhost:9/h"),
    ("http://LOCALHOST/h", False, "localhost", None, "http://localhost/h"),
    ("http://127.0.0.1/h", False, "127.0.0.1", None, "http://127.0.0.1/h"),
    ("http://127.3.4.5:80/h", False, "127.3.4.5", 80, "http://127.3.4.5:80/h"),
    ("http://[::1]:9/h", False, "[::1]", 9, "http://[::1]:9/h"),
    ("https://x.example/h", False, "x.example", None, "https://x.example/h"),
    (
        "HTTPS://Hooks.Example.com/Orders",
        False,
        "hooks.example.com",
        None,
        "https://hooks.example.com/Orders",
    ),
    ("https://x.example/h?token=abc", False, "x.example", None, "https://x.example/h?***"),
    ("https://x.example/h#frag", False, "x.example", None, "https://x.example/h"),
    (
        "http://hooks.internal:8080/x",
        True,
        "hooks.internal",
        8080,
        "http://hooks.internal:8080/x",
    ),
    ("https://[2001:db8::1]:8443/x", False, "[2001:db8::1]", 8443, "https://[2001:db8::1]:8443/x"),
]


def settings_for(url: str, allow_http: bool) -> WorkerSettings:
    env = {"ORDERSTREAM_SINKS": "webhook", SETTING: url}
    if allow_http:
        env["ORDERSTREAM_WEBHOOK_ALLOW_HTTP"] = "true"
    return WorkerSettings.from_env(env)


@pytest.mark.parametrize(
    ("url", "allow_http", "reason"), REFUSED, ids=[repr(c[0]) for c in REFUSED]
)
def test_refused_urls_name_the_setting_in_one_line(url: str, allow_http: bool, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_for(url, allow_http)
    message = str(caught.value)
    assert caught.value.setting == SETTING
    assert message.startswith(f"{SETTING}: ")
    assert reason in message
    assert "\n" not in message
    assert "s3cretPw" not in message  # userinfo is never repeated


@pytest.mark.parametrize(
    ("url", "allow_http", "host", "port", "logged"), ACCEPTED, ids=[repr(c[0]) for c in ACCEPTED]
)
def test_accepted_urls_log_where_urllib3_sends(
    url: str, allow_http: bool, host: str, port: int | None, logged: str
) -> None:
    settings = settings_for(url, allow_http)
    sent = parse_url(url)  # what WebhookSink's PoolManager will connect to
    assert (sent.host, sent.port) == (host, port)
    assert settings.safe_summary()["webhook_url"] == logged
    assert loggable_url(url) == logged


def test_the_review_example_is_no_longer_logged_as_loopback() -> None:
    """Before: validated as loopback and logged as http://localhost/orders, sent to
    attacker.invalid. Now the logged form of any URL is urllib3's host."""
    url = "http://attacker.invalid\\@localhost/orders"
    assert parse_url(url).host == "attacker.invalid"
    assert loggable_url(url) == "<invalid URL>"


def test_the_target_reports_urllib3s_host() -> None:
    target = parse_target("http://[::1]:8080/x?y=1")
    assert (target.scheme, target.host, target.port, target.path) == ("http", "[::1]", 8080, "/x")
    assert target.is_loopback
    assert target.loggable() == "http://[::1]:8080/x?***"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("[::1]", True),
        ("::1", True),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("[::ffff:127.0.0.1]", False),
        ("0x7f000001", False),
        ("2130706433", False),
        ("10.0.0.1", False),
        ("", False),
    ],
)
def test_loopback_means_localhost_or_a_loopback_literal(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
