"""The app lease: one active poller per ORDERSTREAM_APP, others wait as hot standbys.

A lease is an item with an owner and an expiry in wall-clock milliseconds, taken and
renewed by conditional writes. Replicas must keep clocks in sync to well under the
lease time (NTP does); a skew of S seconds shortens or lengthens a takeover by S.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.core.errors import LeaseLostError
from worker.core.runtime import Signal
from worker.state.statetable import app_pk
from writer.dynamodb_calls import DeleteItem, GetItem, PutItem, UpdateItem

log = structlog.get_logger()
LEASE_SK = "LEASE"


class LeaseClient(PutItem, UpdateItem, DeleteItem, GetItem, Protocol):
    """The DynamoDB calls the lease makes on its one item (take, renew, release, who
    holds it): the boto3 client, or a table stand-in in tests."""


class Lease:
    """One worker per app and table reads the stream: a conditional write in the state
    table, renewed while held; `fence()` goes into checkpoint and lane writes, so an
    owner whose lease lapsed cannot write."""

    def __init__(
        self,
        client: LeaseClient,
        table: str,
        app: str,
        owner: str,
        duration_s: float,
        *,
        clock: Callable[[], float],
        scope: str = "",
    ) -> None:
        self._client = client
        self._table = table
        # One lease per app and orders table: one app name on two tables runs both.
        sort_key = f"{LEASE_SK}#{scope}" if scope else LEASE_SK
        self._key = {"pk": {"S": app_pk(app)}, "sk": {"S": sort_key}}
        self.owner = owner
        self.duration_s = duration_s
        self._clock = clock
        self.held = False
        # A take whose answer was lost (a timeout, a 5xx) may still have landed: then
        # the item names us although we never learnt it. Released on the way out.
        self.maybe_held = False
        # Until when the lease is surely ours: the clock read *before* the last
        # successful take or renewal, plus the duration.
        self.valid_until_s = 0.0

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def try_acquire(self) -> bool:
        """Take the lease if it is free, expired, or ours already."""
        started = self._clock()
        now = self._now_ms()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key,
                    "owner": {"S": self.owner},
                    "lease_expires_ms": {"N": str(now + int(self.duration_s * 1000))},
                },
                ConditionExpression=(
                    "attribute_not_exists(pk) OR lease_expires_ms < :now OR #o = :me"
                ),
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        self.held = True
        self.valid_until_s = started + self.duration_s
        return True

    def renew(self) -> None:
        """Extend our lease; raises LeaseLostError if another replica has taken it."""
        started = self._clock()
        expires = self._now_ms() + int(self.duration_s * 1000)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET lease_expires_ms = :exp",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":exp": {"N": str(expires)}, ":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self.held = False
                raise LeaseLostError("the app lease was taken by another replica") from exc
            raise
        self.valid_until_s = started + self.duration_s

    def release(self) -> None:
        """Give the lease up at once so a standby takes over without waiting it out."""
        if not (self.held or self.maybe_held):
            return
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key,
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        self.held = self.maybe_held = False

    def current_owner(self) -> str | None:
        """The unexpired lease's owner (a consistent read), or None: for status and followers."""
        item = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get(
            "Item"
        )
        if not item or int(item["lease_expires_ms"]["N"]) < self._now_ms():
            return None
        return str(item["owner"]["S"])

    def fence(self) -> dict[str, Any]:
        """A TransactWriteItems ConditionCheck that fails unless we still own the lease."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": self._key,
                "ConditionExpression": "#o = :me",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":me": {"S": self.owner}},
            }
        }

    def wait_for(self, stop: Signal, poll_s: float = 0.5) -> bool:
        """Block as a standby until the lease is ours (True) or `stop` is set (False).

        Transient AWS trouble (throttling, 5xx, timeouts) only delays the next try.
        """
        while not stop.is_set():
            try:
                if self.try_acquire():
                    return True
            except (ClientError, BotoCoreError) as exc:
                self.maybe_held = True
                log.warning("lease.acquire_failed", error=str(exc))
            stop.wait(poll_s)
        return False


class FollowerLease(Lease):
    """A child process's view of its parent's lease (ORDERSTREAM_PROCESSES > 1).

    It never takes, renews or releases the lease: it checks that the parent (`owner`)
    still holds it, and fences checkpoints with the parent's owner, so a child of a
    replica that lost the lease cannot move a checkpoint either.
    """

    def try_acquire(self) -> bool:
        """No write: held while the parent (`owner`) holds the lease, as a read of it says."""
        self.held = self.current_owner() == self.owner
        return self.held

    def renew(self) -> None:
        """No write: raises LeaseLostError once the parent no longer holds the lease."""
        if self.current_owner() != self.owner:
            self.held = False
            raise LeaseLostError("the parent process no longer holds the app lease")

    def release(self) -> None:
        """No write: the lease is the parent's to give up."""
        self.held = False
