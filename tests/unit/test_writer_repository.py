"""OrderRepository decisions that need no DynamoDB: validation first, cancellation reasons."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.dynamodb import CancellingTransactClient, UnreachableClient
from writer import OrderRepository, OrderStatus
from writer.errors import AlreadyExistsError, AwsError, NotFoundError, ValidationError


def repo_on(client: Any) -> OrderRepository:
    return OrderRepository(client, "Users", clock=lambda: "2024-01-01T00:00:00.000Z")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r: r.put_user("U#1", "Al", "al@example.com"), "user_id"),
        (lambda r: r.put_user("U1", "  ", "al@example.com"), "name"),
        (lambda r: r.put_user("U1", "Al", "not-an-address"), "email"),
        (lambda r: r.put_order("U1", "O 1", "5"), "order_id"),
        (lambda r: r.put_order("U1", "O1", "5.001"), "amount"),
        (lambda r: r.put_order("U1", "O1", "-5"), "amount"),
        (lambda r: r.set_status("", "O1", OrderStatus.SHIPPED), "user_id"),
        (lambda r: r.set_status("U1", "O#1", OrderStatus.SHIPPED), "order_id"),
        (lambda r: list(r.orders("U1/2")), "user_id"),
    ],
)
def test_bad_input_is_rejected_before_any_request(call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call(repo_on(UnreachableClient()))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("reasons", "error", "text"),
    [
        (["ConditionalCheckFailed", "None"], NotFoundError, "user_id: user 'U1' does not exist"),
        (["None", "ConditionalCheckFailed"], AlreadyExistsError, "order_id: order 'O1' already"),
        (["ConditionalCheckFailed", "ConditionalCheckFailed"], NotFoundError, "user_id: "),
        (["None", "TransactionConflict"], AwsError, "TransactionConflict"),
        (["ThrottlingError", "None"], AwsError, "ThrottlingError"),
    ],
)
def test_put_order_explains_a_cancelled_transaction(
    reasons: list[str], error: type[Exception], text: str
) -> None:
    client = CancellingTransactClient(reasons)
    with pytest.raises(error, match=text) as info:
        repo_on(client).put_order("U1", "O1", Decimal("5"))
    assert isinstance(info.value, error)
    assert client.calls == 1
    if error is AwsError:
        # A conflict or throttle is not the user's bad input: exit 1, so a script may retry.
        assert info.value.exit_code == 1  # type: ignore[attr-defined]  # `error` is a parameter: no narrowing to AwsError
