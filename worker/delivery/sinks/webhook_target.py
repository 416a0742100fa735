"""The webhook's destination, read with the parser that sends the request (urllib3).

The setting used to be checked with `urllib.parse.urlsplit` while urllib3 sent the
request, and the two read some URLs differently: `http://evil.example\\@localhost/`
is loopback to urlsplit (userinfo `evil.example\\`) but goes to `evil.example` with
urllib3 (the backslash starts the path). So the https rule, the loopback exception and
the logged URL all come from `urllib3.util.parse_url` here, and a URL the two parsers
disagree on (host, port or scheme), or that holds a backslash, whitespace, a control
character, a percent-escape in the host or userinfo, is refused outright: an ambiguous
destination is never guessed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

# Backslash, ASCII whitespace and controls, DEL: parsers differ on each (urlsplit drops
# tabs and newlines, urllib3 ends the authority at a backslash, WHATWG turns it into "/").
AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")
USERINFO_HINT = (
    "credentials in the URL (user:pass@) are not sent by the HTTP client; "
    "put them in ORDERSTREAM_WEBHOOK_HEADERS, e.g. "
    '{"Authorization": "Basic <base64 of user:pass>"}'
)


class WebhookUrlError(ValueError):
    """The URL is unusable; the message says why and never repeats the URL's secrets."""


@dataclass(frozen=True)
class WebhookTarget:
    """Where the notifications go, as urllib3 will connect."""

    scheme: str
    host: str  # lower case; IPv6 in brackets, as urllib3 keeps it
    port: int | None
    path: str
    has_query: bool

    @property
    def is_loopback(self) -> bool:
        """Whether plain http is allowed to it: `is_loopback`'s strict rule on the host."""
        return is_loopback(self.host)

    def loggable(self) -> str:
        """The real destination, without the query string (webhook URLs carry tokens)."""
        port = f":{self.port}" if self.port is not None else ""
        hidden = "?***" if self.has_query else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{hidden}"


def parse_target(url: str) -> WebhookTarget:
    """Read `url` as urllib3 does; refuse it when anything about it is ambiguous."""
    if AMBIGUOUS.search(url):
        raise WebhookUrlError("a backslash, space or control character makes the URL ambiguous")
    try:
        sent = parse_url(url)
    except LocationParseError as exc:
        raise WebhookUrlError(_unparseable(exc)) from None
    if sent.scheme not in ("http", "https") or not sent.host:
        if "://" not in url:  # `127.0.0.1:8080/hook`: the scheme left out
            raise WebhookUrlError(
                "must be an http(s) URL with a host: it has no scheme; start it with "
                "https:// (or http:// on a loopback host)"
            )
        raise WebhookUrlError("must be an http(s) URL with a host")
    read = _split(url)
    if sent.auth is not None or read.username is not None or "@" in read.netloc:
        raise WebhookUrlError(USERINFO_HINT)
    if "%" in read.netloc:
        # urllib3 2.8 decodes `evil%2ecom` to evil.com, 2.5 keeps it, urlsplit keeps it.
        raise WebhookUrlError("a percent-escape in the host is read differently by parsers")
    seen_host = (read.hostname or "").lower()
    sent_host = sent.host.lower().strip("[]")
    if (read.scheme.lower(), seen_host, read.port) != (sent.scheme, sent_host, sent.port):
        raise WebhookUrlError(
            f"ambiguous URL: it reads as host {seen_host!r} port {read.port} "
            f"but would be sent to host {sent_host!r} port {sent.port}"
        )
    return WebhookTarget(
        scheme=sent.scheme,
        host=sent.host.lower(),
        port=sent.port,
        path=sent.path or "",
        has_query=bool(sent.query),
    )


def loggable_url(url: str | None) -> str | None:
    """Where the webhook really goes (urllib3's reading), without the query string:
    webhook URLs often carry tokens. An unusable URL is not shown at all."""
    if not url:
        return url
    try:
        return parse_target(url).loggable()
    except WebhookUrlError:
        return "<invalid URL>"


def _split(url: str) -> SplitResult:
    """urlsplit, with its lazy port check done now (a bad port is a ValueError)."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise WebhookUrlError(_unparseable(exc)) from None
    return parts


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP literal in its usual spelling (127.x.y.z, ::1).

    Names that merely look local (`localhost.example.com`, `127.0.0.1.nip.io`), other
    spellings of an address (`0x7f000001`, `127.1`) and IPv4-mapped IPv6 are not: the
    rule stays one a reader of the setting can check by eye.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False
    return address.is_loopback


def _unparseable(error: Exception) -> str:
    """urllib3 quotes the whole URL in its message, query and userinfo included: say
    what is wrong without it (the URL may carry a token)."""
    reason = str(error).split(":", 1)[0] if ":" in str(error) else "unparseable"
    if "port" in str(error).lower():
        reason = "the port is not a number from 1 to 65535"
    return f"not a URL ({reason}); the URL itself is not shown, it may carry a secret"
