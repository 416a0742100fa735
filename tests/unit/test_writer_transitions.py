"""The order status transition rules (pure, no network)."""

from __future__ import annotations

import itertools

import pytest

from writer.models import ALLOWED_TRANSITIONS, OrderStatus, allowed_sources, is_allowed

P, PR, S, D, C = (
    OrderStatus.PENDING,
    OrderStatus.PROCESSING,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.CANCELLED,
)
# docs/design.md section 2: Pending->Processing->Shipped->Delivered; Pending|Processing->Cancelled.
DESIGN_MOVES = {(P, PR), (PR, S), (S, D), (P, C), (PR, C)}


def test_the_five_statuses_of_the_design() -> None:
    assert [s.value for s in OrderStatus] == [
        "Pending",
        "Processing",
        "Shipped",
        "Delivered",
        "Cancelled",
    ]
    assert set(ALLOWED_TRANSITIONS) == set(OrderStatus)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(OrderStatus, repeat=2)))
def test_every_pair_follows_the_design(old: OrderStatus, new: OrderStatus) -> None:
    assert is_allowed(old, new) == ((old, new) in DESIGN_MOVES)


@pytest.mark.parametrize(
    ("target", "sources"),
    [(P, set()), (PR, {P}), (S, {PR}), (D, {S}), (C, {P, PR})],
)
def test_allowed_sources_invert_the_rules(target: OrderStatus, sources: set[OrderStatus]) -> None:
    assert allowed_sources(target) == sources


@pytest.mark.parametrize("terminal", [D, C])
def test_terminal_statuses_have_no_way_out(terminal: OrderStatus) -> None:
    assert not any(is_allowed(terminal, new) for new in OrderStatus)


def test_no_status_moves_to_itself() -> None:
    assert not any(is_allowed(s, s) for s in OrderStatus)
