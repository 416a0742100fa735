"""Transition rules and routes: which changes notify, and through which sinks.

`ORDERSTREAM_NOTIFY_ON` is a comma list of `OLD>NEW` patterns, `*` matching any status
(an insert's missing old status included) and an empty OLD matching inserts only.
`ORDERSTREAM_ROUTES` is a comma list of `OLD>NEW:sink[+sink]`; the first matching route
names the sinks. A change that matches no rule is skipped and counted, never sent.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from writer.models import ALLOWED_TRANSITIONS, OrderStatus

WILDCARD = "*"
# A status in a rule: letters, digits and `_` (so `Pending->Shipped` is an error, not a
# rule for a status called `Pending-`). Statuses outside the writer's list stay allowed.
STATUS_NAME = re.compile(r"[A-Za-z0-9_]+")
KNOWN = tuple(str(s) for s in OrderStatus)
# The changes the writer makes: an insert in any status, and each allowed move.
KNOWN_CHANGES: tuple[tuple[str | None, str], ...] = tuple(
    [(None, status) for status in KNOWN]
    + [(str(old), str(new)) for old, news in ALLOWED_TRANSITIONS.items() for new in sorted(news)]
)


@dataclass(frozen=True)
class Pattern:
    """One `OLD>NEW` pattern: `*` any status (an insert's none too), empty OLD inserts only."""

    old: str  # "*" any, "" insert only, else an exact status
    new: str  # "*" any, else an exact status

    def matches(self, old: str | None, new: str) -> bool:
        """Whether a change from `old` (None: an insert) to `new` fits this pattern."""
        old_ok = self.old in (WILDCARD, old or "")
        return old_ok and self.new in (WILDCARD, new)


@dataclass(frozen=True)
class Route:
    """One ORDERSTREAM_ROUTES entry: changes matching `pattern` go to `sinks`."""

    pattern: Pattern
    sinks: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    """ORDERSTREAM_NOTIFY_ON and ORDERSTREAM_ROUTES parsed: which changes notify, and where."""

    notify_on: tuple[Pattern, ...]
    routes: tuple[Route, ...]
    # The sinks, when every change goes to all of them (the default `*>*`): the hot path
    # then skips matching.
    everything: tuple[str, ...] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        any_change = Pattern(WILDCARD, WILDCARD)
        every = (
            any_change in self.notify_on
            and len(self.routes) == 1
            and (self.routes[0].pattern == any_change)
        )
        object.__setattr__(self, "everything", self.routes[0].sinks if every else None)

    def sinks_for(self, old: str | None, new: str) -> tuple[str, ...]:
        """The sinks this change goes to; empty means it is filtered out."""
        if self.everything is not None:
            return self.everything
        if not any(p.matches(old, new) for p in self.notify_on):
            return ()
        for route in self.routes:
            if route.pattern.matches(old, new):
                return route.sinks
        return ()


def _pattern(text: str) -> Pattern:
    old, sep, new = text.partition(">")
    old, new = old.strip(), new.strip()
    if not sep or not new or ">" in new:
        raise ValueError(f"{text!r} is not OLD>NEW (e.g. Processing>Shipped)")
    for side in (old, new):
        if side in (WILDCARD, "") or side in KNOWN:
            continue
        if not STATUS_NAME.fullmatch(side):
            raise ValueError(f"{text!r}: {side!r} is not a status or * (write OLD>NEW)")
        same = [k for k in KNOWN if k.lower() == side.lower()]
        if same:
            raise ValueError(
                f"{text!r}: {side!r} is not a status (statuses are case-sensitive: {same[0]})"
            )
    return Pattern(old, new)


def unknown_statuses(rules: Rules) -> dict[str, str | None]:
    """Statuses the rules name that the writer never writes, each with a likely meant
    one (`Shiped` -> `Shipped`) or None (`Returned`): allowed, but worth a warning."""
    patterns = list(rules.notify_on) + [r.pattern for r in rules.routes]
    names = {side for p in patterns for side in (p.old, p.new)} - {WILDCARD, "", *KNOWN}
    return {
        name: next(iter(difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.8)), None)
        for name in sorted(names)
    }


def filtered_changes(rules: Rules) -> list[tuple[str | None, str]]:
    """The writer's own kinds of change (inserts, allowed moves) these rules drop."""
    return [(old, new) for old, new in KNOWN_CHANGES if not rules.sinks_for(old, new)]


def parse_rules(notify_on: str | None, routes: str | None, sinks: tuple[str, ...]) -> Rules:
    """Parse both settings; raises ValueError naming the bad part."""
    patterns = tuple(_pattern(p) for p in (notify_on or "*>*").split(",") if p.strip())
    if not patterns:
        raise ValueError("no transition pattern given")
    if not routes:
        return Rules(patterns, (Route(Pattern(WILDCARD, WILDCARD), sinks),))
    parsed: list[Route] = []
    for part in (p for p in routes.split(",") if p.strip()):
        rule, sep, targets = part.rpartition(":")
        if not sep:
            raise ValueError(f"{part!r} is not OLD>NEW:sink")
        names = tuple(t.strip() for t in targets.split("+") if t.strip())
        unknown = [n for n in names if n not in sinks]
        if not names or unknown:
            raise ValueError(f"{part!r}: sinks must be among ORDERSTREAM_SINKS ({','.join(sinks)})")
        parsed.append(Route(_pattern(rule), names))
    return Rules(patterns, tuple(parsed))
