"""In-memory fakes of the SES v2 and EventBridge clients and of the orders table's
profiles, for the email and EventBridge sinks and enrichment (unit tests, simulation).

Each records what it was asked and can be told to fail the way the service does:
an error for the whole call (a `ClientError` with the service's code), or for
EventBridge one entry of a call (`FailedEntryCount` and the entry's `ErrorCode`).
"""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

from botocore.exceptions import ClientError

from tests.fakes.statetable import client_error
from writer.schema import PROFILE_SK, user_pk

CallFault = Callable[[dict[str, Any]], ClientError | None]
EntryFault = Callable[[dict[str, Any]], tuple[str, str] | None]


@dataclass(frozen=True)
class SentEmail:
    sender: str
    to: str
    subject: str
    notification_id: str
    message: Message
    destinations: tuple[str, ...]  # SendEmail's Destination.ToAddresses: who SES mails

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]  # typeshed's Message lacks get_body (EmailMessage has it)
        return str(part.get_content())

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]  # typeshed's Message lacks get_body (EmailMessage has it)
        return None if part is None else str(part.get_content())


class FakeSes:
    """Stands in for `boto3.client("sesv2")`: `send_email` with raw content."""

    def __init__(self, *, verified: tuple[str, ...] = (), fault: CallFault | None = None) -> None:
        self.verified = set(verified)  # empty: every sender is verified
        self.fault = fault
        self.calls = 0
        self.sent: list[SentEmail] = []
        self._lock = threading.Lock()

    def send_email(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        error = self.fault(kwargs) if self.fault else None
        if error is not None:
            raise error
        sender = kwargs["FromEmailAddress"]
        address = email.utils.parseaddr(sender)[1]
        if self.verified and address not in self.verified:
            raise client_error(
                "SendEmail", "MessageRejected", f"Email address is not verified: {address}"
            )
        message = email.message_from_bytes(
            kwargs["Content"]["Raw"]["Data"], policy=email.policy.default
        )
        sent = SentEmail(
            sender=sender,
            to=str(message["To"]),
            subject=str(message["Subject"]),
            notification_id=str(message["X-Orderstream-Notification-Id"]),
            message=message,
            destinations=tuple(kwargs.get("Destination", {}).get("ToAddresses", ())),
        )
        with self._lock:
            self.sent.append(sent)
        return {"MessageId": f"msg-{len(self.sent)}"}


class FakeEventBridge:
    """Stands in for `boto3.client("events")`: `put_events`, per-entry results."""

    def __init__(
        self, *, fault: CallFault | None = None, entry_fault: EntryFault | None = None
    ) -> None:
        self.fault = fault
        self.entry_fault = entry_fault
        self.calls: list[list[dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []  # accepted entries, in order
        self._lock = threading.Lock()

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if len(Entries) > 10:
            raise client_error("PutEvents", "ValidationException", "more than 10 entries")
        with self._lock:
            self.calls.append(list(Entries))
        error = self.fault({"Entries": Entries}) if self.fault else None
        if error is not None:
            raise error
        results: list[dict[str, Any]] = []
        for entry in Entries:
            failure = self.entry_fault(entry) if self.entry_fault else None
            if failure is not None:
                results.append({"ErrorCode": failure[0], "ErrorMessage": failure[1]})
                continue
            with self._lock:
                self.events.append(entry)
                results.append({"EventId": f"evt-{len(self.events)}"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(entry["Detail"]) for entry in self.events]


def profile_item(user_id: str, name: str | None, email_address: str | None) -> dict[str, Any]:
    """A PROFILE item as the writer puts it (DynamoDB JSON)."""
    item: dict[str, Any] = {
        "PK": {"S": user_pk(user_id)},
        "SK": {"S": PROFILE_SK},
        "UserID": {"S": user_id},
    }
    if name is not None:
        item["Name"] = {"S": name}
    if email_address is not None:
        item["Email"] = {"S": email_address}
    return item


class FakeProfiles:
    """Stands in for the orders table as enrichment reads it: `batch_get_item` over
    PROFILE items, with DynamoDB's 100-key limit, `UnprocessedKeys` on request and
    ConsumedCapacity (half a unit per key) when asked for."""

    def __init__(self, *, fault: CallFault | None = None, unprocessed: int = 0) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.fault = fault
        self.unprocessed = unprocessed  # the next calls leave their last key unprocessed
        self.calls: list[list[str]] = []  # the user ids asked for, per call
        self._lock = threading.Lock()

    def add(self, user_id: str, name: str | None = None, email_address: str | None = None) -> None:
        self.items[user_id] = profile_item(user_id, name, email_address)

    def batch_get_item(self, *, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        if len(keys) > 100:
            raise client_error("BatchGetItem", "ValidationException", "Too many items requested")
        users = [key["PK"]["S"].removeprefix("USER#") for key in keys]
        with self._lock:
            self.calls.append(users)
        error = self.fault(RequestItems) if self.fault else None
        if error is not None:
            raise error
        left: list[dict[str, Any]] = []
        if self.unprocessed and len(keys) > 1:
            self.unprocessed -= 1
            keys, left = keys[:-1], keys[-1:]
        found = [self.items[u] for u in users[: len(keys)] if u in self.items]
        answer: dict[str, Any] = {
            "Responses": {table: found},
            "UnprocessedKeys": {table: {**request, "Keys": left}} if left else {},
        }
        if kwargs.get("ReturnConsumedCapacity") == "TOTAL":
            answer["ConsumedCapacity"] = [{"TableName": table, "CapacityUnits": 0.5 * len(keys)}]
        return answer
