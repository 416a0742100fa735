"""One setting, declared once: `setting(...)` on a WorkerSettings field, read back as a
`Setting` row by `declared(...)` for the environment, the CLI flags and the docs table.

Field metadata rather than pydantic-settings: no new dependency; the parsers keep their
one-line errors naming the variable, which tests and operators rely on; and the frozen
dataclass every module already takes stays what it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from worker.settings.parsers import Parser

T = TypeVar("T")
PREFIX = "ORDERSTREAM_"
_KEY = "orderstream.setting"


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One setting: its field, parser, default, and the texts of --help and the docs."""

    name: str
    parse: Callable[[str], Any]
    default: object
    help: str
    doc: str
    # The default as the docs and --help show it, when the value alone would not say
    # it (`2 x failover`); markdown, its backticks dropped for --help.
    default_doc: str | None = None
    # README's summary table: True for the doc text (then free of links), or its own.
    summary: str | bool = False
    metavar: str | None = None

    @property
    def env(self) -> str:
        """The variable: `ORDERSTREAM_` and the name in capitals."""
        return PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The CLI flag: the name, dashed (`--max-shards`)."""
        return "--" + self.name.replace("_", "-")

    @property
    def accepts(self) -> str:
        """The values the parser takes (`1..64`), where it says; else empty."""
        return self.parse.accepts if isinstance(self.parse, Parser) else ""

    @property
    def summary_text(self) -> str | None:
        """README's summary text, or None for a setting the summary leaves out."""
        if self.summary is True:
            return self.doc
        return self.summary or None

    def default_markdown(self) -> str:
        """The default for the docs tables: `default_doc`, else a dash, a number or code."""
        if self.default_doc is not None:
            return self.default_doc
        if self.default is None:
            return "—"
        if isinstance(self.default, int | float) and not isinstance(self.default, bool):
            return display(self.default)
        return f"`{display(self.default)}`"

    def default_plain(self) -> str:
        """The default for --help: `default_doc` without backticks, else `none` or the value."""
        if self.default_doc is not None:
            return self.default_doc.replace("`", "")
        return "none" if self.default is None else display(self.default)


def setting(
    default: T,
    *,
    parse: Callable[[str], Any],
    help: str,
    doc: str,
    default_doc: str | None = None,
    summary: str | bool = False,
    metavar: str | None = None,
) -> T:
    """A WorkerSettings field with its setting in the metadata. Typed as its default, as
    `dataclasses.field` is to mypy; a mapping default is copied per instance."""
    spec = {
        "parse": parse,
        "help": help,
        "doc": doc,
        "default_doc": default_doc,
        "summary": summary,
        "metavar": metavar,
    }
    if isinstance(default, Mapping):
        made = dataclasses.field(default_factory=lambda: dict(default), metadata={_KEY: spec})
    else:
        made = dataclasses.field(default=cast("Any", default), metadata={_KEY: spec})
    return cast("T", made)


def declared(cls: type[Any]) -> tuple[Setting, ...]:
    """The settings declared on `cls`'s fields, in field order."""
    rows = []
    for field in dataclasses.fields(cls):
        if _KEY not in field.metadata:
            continue
        if field.default_factory is not dataclasses.MISSING:
            default: object = field.default_factory()
        else:
            default = field.default
        rows.append(Setting(name=field.name, default=default, **field.metadata[_KEY]))
    return tuple(rows)


def display(value: object) -> str:
    """A setting as an operator writes it: `log,webhook`, `on`, `500`; never a repr."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}s" if isinstance(v, float) else str(v) for v in value) or "off"
    return str(value)
