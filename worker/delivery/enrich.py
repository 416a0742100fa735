"""Profile enrichment: each user's PROFILE item, read once per page and cached.

The profile lives beside the orders in the single table (`PK=USER#<id>`, `SK=PROFILE`),
so a page's users are one `BatchGetItem` (at most 100 keys a call, DynamoDB's limit),
eventually consistent: half a read unit per profile of up to 4 KB. Profiles are cached
for `ttl_s`, a missing one too (a profile written meanwhile is seen within the TTL).
A missing profile is `user` None, counted and logged, never an error; a read that still
fails after botocore's retries leaves the page un-enriched, and the sinks that need the
profile read it again when they send (`Profiles.complete`), where a failure is a
transient delivery error, retried like any other.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.core.errors import DeliveryError
from worker.core.models import Notification, UserProfile
from worker.core.stats import Stats
from writer.schema import PROFILE_SK, user_id_from_pk, user_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.literals import ReturnConsumedCapacityType

log = structlog.get_logger()
BATCH_KEYS = 100  # BatchGetItem's limit per call
UNPROCESSED_ATTEMPTS = 5  # calls for keys DynamoDB left unprocessed (throttled), then fail
MAX_ENTRIES = 50_000  # cached users; the oldest go first
# Only the attributes the body carries: less to transfer (read units count the whole item).
PROJECTION = "PK, UserID, #name, Email"


class ProfileReadError(Exception):
    """The profiles could not be read (after botocore's retries and our own)."""


class BatchGetter(Protocol):
    """The part of the DynamoDB client enrichment uses: the boto3 client, or a fake
    profile table."""

    def batch_get_item(
        self,
        *,
        RequestItems: dict[str, Any],  # noqa: N803 (boto3's names)
        ReturnConsumedCapacity: ReturnConsumedCapacityType = ...,  # noqa: N803
    ) -> Mapping[str, Any]:
        """DynamoDB's BatchGetItem: boto3's keyword arguments in, its raw answer out."""
        ...


class Profiles:
    """Looks users up by id, through a TTL cache; thread-safe (shard threads share it)."""

    def __init__(
        self,
        *,
        client: BatchGetter,
        table: str,
        ttl_s: float,
        clock: Callable[[], float],
        stats: Stats | None = None,
        sleep: Callable[[float], None] | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        """`clock` is monotonic seconds (the TTL); `sleep` paces a retry of unprocessed
        keys (none by default: DynamoDB answered, it only asks to be called again)."""
        self._client = client
        self._table = table
        self._ttl_s = ttl_s
        self._clock = clock
        self._stats = stats or Stats()
        self._sleep = sleep
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, UserProfile | None]] = OrderedDict()
        self.read_units = 0.0  # ConsumedCapacity summed (or 0.5 per key when not returned)
        self.keys_read = 0

    def enrich(self, notifications: Sequence[Notification]) -> list[Notification]:
        """The page with each change's profile filled in: one read for the users not
        cached. A read that fails leaves the page as it was (see the module docstring)."""
        wanted = list(dict.fromkeys(n.user_id for n in notifications if not n.looked_up))
        try:
            found = self.lookup_many(wanted)
        except ProfileReadError as exc:
            log.warning("enrich.read_failed", error=str(exc), users=len(wanted))
            return list(notifications)
        return [
            n if n.looked_up else dataclasses.replace(n, user=found.get(n.user_id), looked_up=True)
            for n in notifications
        ]

    def complete(self, notification: Notification) -> Notification:
        """The notification with its profile looked up (no read when the page was
        enriched); raises a transient DeliveryError when it cannot be read."""
        if notification.looked_up:
            return notification
        try:
            found = self.lookup_many([notification.user_id])
        except ProfileReadError as exc:
            raise DeliveryError(f"profile of {notification.user_id}: {exc}", True) from exc
        user = found.get(notification.user_id)
        return dataclasses.replace(notification, user=user, looked_up=True)

    def lookup_many(self, user_ids: Iterable[str]) -> dict[str, UserProfile | None]:
        """Every user's profile (None: no PROFILE item), from the cache or one read."""
        now = self._clock()
        result: dict[str, UserProfile | None] = {}
        missing: list[str] = []
        with self._lock:
            for user_id in user_ids:
                cached = self._cache.get(user_id)
                if cached is not None and cached[0] > now:
                    result[user_id] = cached[1]
                else:
                    missing.append(user_id)
        if missing:
            read = self._read(missing)
            self._remember(read, now + self._ttl_s)
            result.update(read)
        return result

    def _remember(self, read: dict[str, UserProfile | None], expires_at: float) -> None:
        with self._lock:
            for user_id, profile in read.items():
                self._cache[user_id] = (expires_at, profile)
                self._cache.move_to_end(user_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)

    def _read(self, user_ids: list[str]) -> dict[str, UserProfile | None]:
        found: dict[str, UserProfile | None] = dict.fromkeys(user_ids)
        for start in range(0, len(user_ids), BATCH_KEYS):
            chunk = user_ids[start : start + BATCH_KEYS]
            for item in self._batch_get(
                [{"PK": {"S": user_pk(u)}, "SK": {"S": PROFILE_SK}} for u in chunk]
            ):
                profile = profile_of(item)
                if profile is not None and profile.user_id in found:
                    found[profile.user_id] = profile
        absent = [u for u, p in found.items() if p is None]
        self._stats.add("profiles_read", len(user_ids))
        if absent:
            self._stats.add("profiles_missing", len(absent))
            log.warning("enrich.profile_missing", users=absent[:20], count=len(absent))
        return found

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One BatchGetItem, called again for the keys DynamoDB left unprocessed."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            self._table: {
                "Keys": keys,
                "ProjectionExpression": PROJECTION,
                "ExpressionAttributeNames": {"#name": "Name"},
            }
        }
        for attempt in range(UNPROCESSED_ATTEMPTS):
            if attempt and self._sleep is not None:
                self._sleep(0.05 * 2**attempt)
            try:
                answer = self._client.batch_get_item(
                    RequestItems=request, ReturnConsumedCapacity="TOTAL"
                )
            except (ClientError, BotoCoreError) as exc:
                raise ProfileReadError(str(exc)) from exc
            asked = len(request[self._table]["Keys"])
            self._count_units(answer, asked)
            items.extend(answer.get("Responses", {}).get(self._table, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request.get(self._table, {}).get("Keys"):
                return items
        raise ProfileReadError(f"{len(request[self._table]['Keys'])} keys still unprocessed")

    def _count_units(self, answer: Mapping[str, Any], asked: int) -> None:
        """Read units as DynamoDB reports them; half a unit per key asked when it does
        not (moto, some local emulators): an eventually consistent read of up to 4 KB."""
        unprocessed = len(
            (answer.get("UnprocessedKeys") or {}).get(self._table, {}).get("Keys", [])
        )
        units = sum(c.get("CapacityUnits", 0.0) for c in answer.get("ConsumedCapacity") or [])
        with self._lock:
            self.keys_read += asked - unprocessed
            self.read_units += units if units else 0.5 * (asked - unprocessed)


def profile_of(item: dict[str, Any]) -> UserProfile | None:
    """A PROFILE item (DynamoDB JSON) as a UserProfile; None when it has no user key."""
    user_id = user_id_from_pk(item.get("PK", {}).get("S", ""))
    if user_id is None:
        return None
    return UserProfile(user_id=user_id, name=_string(item, "Name"), email=_string(item, "Email"))


def _string(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {})
    text = value.get("S") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None
