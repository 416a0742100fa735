"""Transition rules (ORDERSTREAM_NOTIFY_ON) and routes (ORDERSTREAM_ROUTES)."""

from __future__ import annotations

import pytest

from worker.core.rules import filtered_changes, parse_rules, unknown_statuses
from worker.settings import WorkerSettings

SINKS = ("log", "webhook", "sns", "sqs")


def sinks_for(
    notify_on: str | None, routes: str | None, old: str | None, new: str
) -> tuple[str, ...]:
    return parse_rules(notify_on, routes, SINKS).sinks_for(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [(None, "Pending"), ("Pending", "Processing"), ("Shipped", "Delivered"), ("X", "Returned")],
)
def test_the_default_notifies_every_change_on_every_sink(old: str | None, new: str) -> None:
    assert sinks_for(None, None, old, new) == SINKS


@pytest.mark.parametrize(
    ("notify_on", "old", "new", "notifies"),
    [
        ("Processing>Shipped", "Processing", "Shipped", True),
        ("Processing>Shipped", "Pending", "Shipped", False),
        ("Processing>Shipped", "Processing", "Cancelled", False),
        ("*>Cancelled", "Pending", "Cancelled", True),
        ("*>Cancelled", "Processing", "Cancelled", True),
        ("*>Cancelled", None, "Cancelled", True),  # `*` matches an insert too
        ("*>Cancelled", "Pending", "Processing", False),
        ("Pending>*", "Pending", "Processing", True),
        ("Pending>*", None, "Pending", False),
        (">Pending", None, "Pending", True),  # empty OLD: inserts only
        (">Pending", "Processing", "Pending", False),
        (">*", None, "Shipped", True),
        ("*>*", "Anything", "Else", True),
        ("Pending>Processing, Shipped>Delivered", "Shipped", "Delivered", True),
        ("Pending>Processing, Shipped>Delivered", "Processing", "Shipped", False),
        (" Processing > Shipped ", "Processing", "Shipped", True),
        ("Processing>Shipped,", "Processing", "Shipped", True),  # a trailing comma is fine
        ("processed>shipping", "Processing", "Shipped", False),  # statuses are exact
        ("*>Returned", "Delivered", "Returned", True),  # statuses outside the writer's list
    ],
)
def test_notify_on_patterns(notify_on: str, old: str | None, new: str, notifies: bool) -> None:
    assert bool(sinks_for(notify_on, None, old, new)) is notifies


def test_routes_pick_sinks_and_the_first_match_wins() -> None:
    routes = "*>Cancelled:sqs,Processing>Shipped:webhook+sns,*>*:webhook"
    assert sinks_for(None, routes, "Pending", "Cancelled") == ("sqs",)
    assert sinks_for(None, routes, "Processing", "Shipped") == ("webhook", "sns")
    assert sinks_for(None, routes, "Shipped", "Delivered") == ("webhook",)


def test_a_later_catch_all_never_overrides_an_earlier_route() -> None:
    routes = "*>*:log,*>Cancelled:sqs"
    assert sinks_for(None, routes, "Pending", "Cancelled") == ("log",)


def test_plus_joins_sinks_in_the_order_given() -> None:
    assert sinks_for(None, "*>*:sqs + log+webhook", "A", "B") == ("sqs", "log", "webhook")


def test_a_change_matching_no_route_is_skipped() -> None:
    routes = "*>Cancelled:sqs"
    assert sinks_for(None, routes, "Pending", "Processing") == ()
    assert sinks_for(None, routes, "Pending", "Cancelled") == ("sqs",)


def test_notify_on_filters_before_routes() -> None:
    notify_on = "Pending>Processing"
    routes = "*>*:webhook"
    assert sinks_for(notify_on, routes, "Pending", "Processing") == ("webhook",)
    assert sinks_for(notify_on, routes, "Processing", "Shipped") == ()


def test_routes_on_inserts_only() -> None:
    rules = parse_rules(None, ">*:log,*>*:webhook", SINKS)
    assert rules.sinks_for(None, "Pending") == ("log",)
    assert rules.sinks_for("Pending", "Processing") == ("webhook",)


@pytest.mark.parametrize(
    "notify_on",
    [
        "Pending",  # no `>`
        "Pending>",  # no NEW
        ">",
        "A>B>C",
        "Pend*>Shipped",  # `*` is all or nothing
        "Pending>Ship ped",
        "Pending>Shipped;",
        "Pending->Shipped",  # an arrow is not `>`: `Pending-` is no status
        "*>shipped",  # statuses are case-sensitive: a case slip is an error, not a filter
        "processing>Shipped",
        ",",  # nothing at all
        " , ",
    ],
)
def test_bad_notify_on_is_rejected(notify_on: str) -> None:
    with pytest.raises(ValueError, match=r"OLD>NEW|status|pattern"):
        parse_rules(notify_on, None, SINKS)


@pytest.mark.parametrize(
    ("routes", "match"),
    [
        ("*>*", "OLD>NEW:sink"),  # no sinks part
        ("*>*:", "sinks must be among"),
        ("*>*:email", "sinks must be among"),
        ("*>*:log+email", "sinks must be among"),
        ("*>*:+", "sinks must be among"),
        ("Pending:log", "OLD>NEW"),
        ("Pe*>*:log", "status or"),
    ],
)
def test_bad_routes_are_rejected(routes: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_rules(None, routes, SINKS)


def test_routes_may_only_name_configured_sinks() -> None:
    with pytest.raises(ValueError, match=r"ORDERSTREAM_SINKS \(log\)"):
        parse_rules(None, "*>*:webhook", ("log",))
    assert parse_rules(None, "*>*:log", ("log",)).sinks_for("A", "B") == ("log",)


def test_a_case_slip_names_the_status_meant() -> None:
    with pytest.raises(ValueError, match=r"'shipped' is not a status .*case-sensitive: Shipped"):
        parse_rules("*>shipped", None, SINKS)


def test_unknown_statuses_are_allowed_and_reported_with_a_likely_one() -> None:
    rules = parse_rules("Pending>Shiped,*>Returned", "*>*:log", SINKS)
    assert unknown_statuses(rules) == {"Returned": None, "Shiped": "Shipped"}
    assert unknown_statuses(parse_rules(None, None, SINKS)) == {}


def test_filtered_changes_are_the_writer_changes_no_rule_lets_through() -> None:
    assert filtered_changes(parse_rules(None, None, SINKS)) == []
    shipped_only = filtered_changes(parse_rules("*>Shipped", None, SINKS))
    assert ("Processing", "Shipped") not in shipped_only
    assert (None, "Pending") in shipped_only
    assert ("Shipped", "Delivered") in shipped_only
    routed = filtered_changes(parse_rules(None, ">*:log", SINKS))  # routes filter too
    assert (None, "Pending") not in routed
    assert ("Pending", "Processing") in routed


def test_the_new_sinks_route_with_plus_as_the_issue_writes_it() -> None:
    settings = WorkerSettings.from_env(
        {
            "ORDERSTREAM_SINKS": "log,email,eventbridge",
            "ORDERSTREAM_EMAIL_FROM": "shop@example.com",
            "ORDERSTREAM_ROUTES": "Shipped>Delivered:email+eventbridge,*>*:log",
        }
    )
    assert settings.rules.sinks_for("Shipped", "Delivered") == ("email", "eventbridge")
    assert settings.rules.sinks_for("Processing", "Shipped") == ("log",)
