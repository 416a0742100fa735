"""The "Log events" table (docs/operations/log-events.md) names exactly the events that
worker/ and writer/ emit.

The events are found in the code's syntax trees, not by running it: a structlog call with a
literal event name (`log.info("name", ...)` at any level, `log.log(level, "name")`), and a
JSON line rendered by hand (`line["event"] = "name"`, `{"event": "name"}`), as the log sink
does. Both directions fail: an event the code emits that the table lacks, and a row for an
event the code no longer emits.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS_PAGE = ROOT / "docs" / "operations" / "log-events.md"
PAGE_NAME = EVENTS_PAGE.relative_to(ROOT).as_posix()
SOURCE_DIRS = ("worker", "writer")
SECTION = "Log events"
LEVEL_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "msg"}
)
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")  # docs/style.md: snake or dotted
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(?:```|~~~)")
CODE_SPAN = re.compile(r"`([^`]+)`")


# -- the code side ---------------------------------------------------------------------


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _logged_event(call: ast.Call) -> str | None:
    """The event name of a logger call: `x.info("name")`, `x.log(level, "name")`, or
    `x.info(event="name")`, `log_from_signal_handler(x.info, "name")`; None for anything
    else or a name that is not a literal."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called == "log_from_signal_handler":
        return _literal(call.args[1]) if len(call.args) > 1 else None
    if not isinstance(call.func, ast.Attribute):
        return None
    method = call.func.attr
    if method not in LEVEL_METHODS and method != "log":
        return None
    for keyword in call.keywords:
        if keyword.arg == "event":
            return _literal(keyword.value)
    position = 0 if method in LEVEL_METHODS else 1
    return _literal(call.args[position]) if len(call.args) > position else None


def _rendered_event(node: ast.AST) -> str | None:
    """The event name of a JSON line built by hand: `line["event"] = "name"` or a dict
    display with an `"event": "name"` entry."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Subscript) and _literal(target.slice) == "event":
                return _literal(node.value)
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if _literal(key) == "event":
                return _literal(value)
    return None


def events_in_source(source: str, filename: str) -> dict[str, list[str]]:
    """Event name -> where it is emitted (`file:line`), for one module's text."""
    found: dict[str, list[str]] = defaultdict(list)
    for node in ast.walk(ast.parse(source, filename)):
        name = _logged_event(node) if isinstance(node, ast.Call) else _rendered_event(node)
        if name is not None:
            found[name].append(f"{filename}:{getattr(node, 'lineno', 0)}")
    return dict(found)


def code_events(root: Path = ROOT) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            for name, places in events_in_source(path.read_text("utf-8"), relative).items():
                found[name].extend(places)
    return dict(found)


# -- the docs side ---------------------------------------------------------------------


def documented_events(markdown: str, section: str = SECTION) -> dict[str, list[int]]:
    """Event name -> line numbers in the page: every `name` in backticks in the first column of
    the table rows under the `section` heading, up to the next heading of any level.

    Raises LookupError when there is no such heading.
    """
    found: dict[str, list[int]] = defaultdict(list)
    seen = inside = fenced = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else HEADING.match(line)
        if heading:
            if inside:
                break
            inside = heading.group(1) == section
            seen = seen or inside
        elif inside and not fenced and line.lstrip().startswith("|"):
            first_column = line.strip().strip("|").split("|")[0]
            for name in CODE_SPAN.findall(first_column):
                found[name].append(number)
    if not seen:
        raise LookupError(f"no {section!r} heading")
    return dict(found)


# -- the tests -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emitted() -> dict[str, list[str]]:
    return code_events()


@pytest.fixture(scope="module")
def documented() -> dict[str, list[int]]:
    try:
        return documented_events(EVENTS_PAGE.read_text("utf-8"))
    except LookupError as exc:
        pytest.fail(f"{PAGE_NAME}: {exc}: the operator's guide lists every log event there")


def test_every_event_the_code_emits_is_in_the_docs(
    emitted: dict[str, list[str]], documented: dict[str, list[int]]
) -> None:
    missing = sorted(set(emitted) - set(documented))
    assert not missing, (
        f"{len(missing)} event(s) emitted by the code but missing from the "
        f"{SECTION!r} table of {PAGE_NAME}:\n"
        + "\n".join(f"  {name}  ({', '.join(emitted[name])})" for name in missing)
    )


def test_every_event_in_the_docs_is_still_emitted(
    emitted: dict[str, list[str]], documented: dict[str, list[int]]
) -> None:
    gone = sorted(set(documented) - set(emitted))
    assert not gone, (
        f"{len(gone)} event(s) in the {SECTION!r} table of {PAGE_NAME} that the code "
        "no longer emits:\n"
        + "\n".join(
            f"  {name}  ({PAGE_NAME} line {', '.join(map(str, documented[name]))})" for name in gone
        )
    )


def test_each_event_has_one_row(documented: dict[str, list[int]]) -> None:
    repeated = {name: lines for name, lines in documented.items() if len(lines) > 1}
    assert not repeated, f"events listed more than once ({PAGE_NAME} lines): {repeated}"


def test_event_names_are_snake_case_or_dotted(emitted: dict[str, list[str]]) -> None:
    odd = {name: places for name, places in emitted.items() if not EVENT_NAME.fullmatch(name)}
    assert not odd, f"event names that are not snake_case or dotted (docs/style.md): {odd}"


def test_the_scan_sees_the_worker(emitted: dict[str, list[str]]) -> None:
    """A guard against a scan that finds nothing (a moved folder, a broken walk)."""
    assert {"worker.stats", "data_loss", "notification", "notification.dead_lettered"} <= set(
        emitted
    )


SAMPLE_SOURCE = """
log.info("a.started", shard_id=shard)
self._log.warning("b_c")
structlog.get_logger().exception("d")
log.log(logging.INFO, "e.f", message=text)
log.info(event="g")
line["event"] = "h"
payload = {"type": "x", "event": "i"}
logger.msg("k")
log.info(f"not.{literal}")
log.info(name)
log.bind(event="not.an.event")
print("not.a.log")
"""


def test_the_scan_finds_every_way_an_event_is_written() -> None:
    found = events_in_source(SAMPLE_SOURCE, "sample.py")
    assert set(found) == {"a.started", "b_c", "d", "e.f", "g", "h", "i", "k"}
    assert found["a.started"] == ["sample.py:2"]


SAMPLE_PAGE = """\
## Operations

| `not.this.table` | info |

### Log events

| event | level |
|---|---|
| `a.b` | info |
| `c` | error ⚠ | uses `not.a.name` in another column |

```
| `in.a.code.block` | info |
```

| `d` | warning |

#### Field glossary

| `shard_id` | not an event |
"""


def test_the_table_is_read_from_its_section_only() -> None:
    assert documented_events(SAMPLE_PAGE) == {"a.b": [9], "c": [10], "d": [16]}
    with pytest.raises(LookupError):
        documented_events(SAMPLE_PAGE, "Log lines")
