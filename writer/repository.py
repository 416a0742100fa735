"""Writes and queries on the orders table; every write is conditional."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from writer import items, schema
from writer.aws_errors import translate
from writer.dynamodb_calls import (
    BatchWriteItem,
    DescribeTable,
    GetItem,
    PutItem,
    TransactWriteItems,
    UpdateItem,
)
from writer.errors import (
    AlreadyExistsError,
    AwsError,
    ConcurrentUpdateError,
    ConfigurationError,
    IllegalTransitionError,
    NotFoundError,
)
from writer.models import Order, OrderStatus, User, allowed_sources
from writer.validation import check_email, check_id, check_name, parse_amount

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.paginator import QueryPaginator
    from mypy_boto3_dynamodb.waiter import TableExistsWaiter


def utc_now() -> str:
    """Now in UTC, ISO-8601 to the millisecond with a `Z`: the items' timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RepositoryClient(
    DescribeTable, PutItem, TransactWriteItems, GetItem, UpdateItem, BatchWriteItem, Protocol
):
    """The DynamoDB calls the repository makes: the boto3 client, or a stand-in in
    tests (one that must not be called, to show validation comes first). BatchWriteItem
    is not the repository's own: `writer load` writes through its client."""

    def create_table(self, *args: Any, **kwargs: Any) -> Mapping[str, Any]:
        """CreateTable, with `schema.table_definition`'s arguments as they are."""
        ...

    def get_waiter(self, waiter_name: Literal["table_exists"]) -> TableExistsWaiter:
        """Waits for the created table to be ACTIVE."""
        ...

    def get_paginator(self, operation_name: Literal["query"]) -> QueryPaginator:
        """A user's orders, through the UserID index, every page."""
        ...


class OrderRepository:
    """The writer's Python API; the CLI is a thin layer on it.

    Validation happens before any call, and every write carries a condition, so a
    rejected request writes nothing.
    """

    def __init__(
        self,
        client: RepositoryClient,
        table: str = schema.DEFAULT_TABLE,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._client = client
        self.table = table
        self._clock = clock

    # -- table -------------------------------------------------------------------

    def create_table(self, provisioned: tuple[int, int] | None = None) -> bool:
        """Create the table and wait for ACTIVE; True if created, False if it existed."""
        try:
            with translate(self.table):
                self._client.create_table(**schema.table_definition(self.table, provisioned))
            created = True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            created = False
        with translate(self.table):
            waiter = self._client.get_waiter("table_exists")
            waiter.wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
            description = self._client.describe_table(TableName=self.table)["Table"]
        self._check_shape(description)
        return created

    def _check_shape(self, table: Any) -> None:
        keys = [
            {"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]}
            for k in table["KeySchema"]
        ]
        if keys != schema.KEY_SCHEMA:
            raise ConfigurationError(
                f"table {self.table!r} has key schema {keys}, not PK (HASH) + SK (RANGE)"
            )
        stream = table.get("StreamSpecification") or {}
        if not stream.get("StreamEnabled") or stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise ConfigurationError(
                f"table {self.table!r} exists without a NEW_AND_OLD_IMAGES stream"
            )
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        if schema.GSI_NAME not in indexes:
            raise ConfigurationError(
                f"table {self.table!r} exists without the {schema.GSI_NAME} index"
            )

    # -- users -------------------------------------------------------------------

    def put_user(self, user_id: str, name: str, email: str) -> User:
        """Create or replace a user's profile."""
        user = User(
            check_id("user_id", user_id), check_name(name), check_email(email), self._clock()
        )
        with translate(self.table):
            self._client.put_item(TableName=self.table, Item=items.user_item(user))
        return user

    # -- orders ------------------------------------------------------------------

    def put_order(
        self,
        user_id: str,
        order_id: str,
        amount: str | Decimal,
        status: OrderStatus = OrderStatus.PENDING,
    ) -> Order:
        """Create an order; fails if the user is missing or the order exists.

        One transaction: the user check and the conditional put succeed or fail together.
        """
        now = self._clock()
        order = Order(
            check_id("user_id", user_id),
            check_id("order_id", order_id),
            parse_amount(amount),
            OrderStatus(status),
            now,
            now,
        )
        try:
            with translate(self.table):
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "ConditionCheck": {
                                "TableName": self.table,
                                "Key": items.user_key(user_id),
                                "ConditionExpression": "attribute_exists(PK)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": items.order_item(order),
                                "ConditionExpression": "attribute_not_exists(PK)",
                            }
                        },
                    ]
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise NotFoundError(f"user_id: user {user_id!r} does not exist") from exc
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                raise AlreadyExistsError(f"order_id: order {order_id!r} already exists") from exc
            # A conflict with a concurrent write or a throttle: not bad input, worth a retry.
            raise AwsError(
                f"order {order_id!r} not written, transaction cancelled: {reasons or 'no reason'}"
            ) from exc
        return order

    def get_order(self, user_id: str, order_id: str) -> Order | None:
        """The order as stored (a consistent read), or None."""
        with translate(self.table):
            response = self._client.get_item(
                TableName=self.table, Key=items.order_key(user_id, order_id), ConsistentRead=True
            )
        item = response.get("Item")
        return items.order_from_item(item) if item else None

    def set_status(
        self,
        user_id: str,
        order_id: str,
        status: OrderStatus,
        expect: OrderStatus | None = None,
        force: bool = False,
    ) -> tuple[Order, Order]:
        """Move an order to `status` in one conditional update; returns (before, after).

        The transition rule lives in the condition itself, so two writers racing on
        one order cannot both pass it. `force` drops the rule, never the existence check.
        """
        check_id("user_id", user_id)
        check_id("order_id", order_id)
        conditions = ["attribute_exists(PK)"]
        values: dict[str, Any] = {":new": {"S": status.value}, ":now": {"S": self._clock()}}
        if expect is not None:
            conditions.append("#s = :expect")
            values[":expect"] = {"S": expect.value}
        sources = allowed_sources(status)
        if not force:
            if not sources:
                self._require_order(user_id, order_id)
                raise IllegalTransitionError(f"status: no order may move to {status.value}")
            names = []
            for i, source in enumerate(sorted(sources)):
                values[f":from{i}"] = {"S": source.value}
                names.append(f":from{i}")
            conditions.append(f"#s IN ({', '.join(names)})")
        try:
            with translate(self.table):
                response = self._client.update_item(
                    TableName=self.table,
                    Key=items.order_key(user_id, order_id),
                    UpdateExpression="SET #s = :new, UpdatedAt = :now",
                    ConditionExpression=" AND ".join(conditions),
                    ExpressionAttributeNames={"#s": "Status"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise self._explain_rejection(user_id, order_id, status, expect) from exc
        before = items.order_from_item(response["Attributes"])
        after = Order(
            before.user_id,
            before.order_id,
            before.amount,
            status,
            before.created_at,
            values[":now"]["S"],
        )
        return before, after

    def _require_order(self, user_id: str, order_id: str) -> Order:
        order = self.get_order(user_id, order_id)
        if order is None:
            raise NotFoundError(f"order_id: order {order_id!r} of user {user_id!r} does not exist")
        return order

    def _explain_rejection(
        self, user_id: str, order_id: str, status: OrderStatus, expect: OrderStatus | None
    ) -> Exception:
        """After a failed condition, read the order once to say which part failed."""
        try:
            current = self._require_order(user_id, order_id)
        except NotFoundError as missing:
            return missing
        if expect is not None and current.status != expect:
            return ConcurrentUpdateError(
                f"status: expected {expect.value} but the order is {current.status}"
            )
        return IllegalTransitionError(f"status: {current.status} -> {status.value} is not allowed")

    def orders(self, user_id: str) -> Iterator[Order]:
        """A user's orders through the UserID GSI, every page."""
        check_id("user_id", user_id)
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            IndexName=schema.GSI_NAME,
            KeyConditionExpression="UserID = :u",
            FilterExpression="begins_with(SK, :o)",
            ExpressionAttributeValues={":u": {"S": user_id}, ":o": {"S": schema.ORDER_PREFIX}},
        )
        with translate(self.table):
            for page in pages:
                for item in page.get("Items", []):
                    yield items.order_from_item(item)
