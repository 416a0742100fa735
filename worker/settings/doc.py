"""The settings tables of docs/configuration.md and README.md, rendered from the
declaration so they cannot drift from the code: `python -m worker.settings.doc`
(`make settings-doc`) rewrites them between their markers, `--check` only compares.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from worker.settings.declaration import SETTINGS
from worker.settings.setting import Setting

COMMAND = "make settings-doc"
# Each file with its marker and table; the full table's links are relative to docs/.
FULL = ("docs/configuration.md", "settings-table")
SUMMARY = ("README.md", "settings-summary")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(*cells: str) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def full_table(settings: Sequence[Setting] = SETTINGS) -> str:
    """Every setting: variable, meaning, the values it accepts (its bounds), default."""
    lines = ["| variable | meaning | accepts | default |", "|---|---|---|---|"]
    lines += [_row(f"`{s.env}`", s.doc, s.accepts, s.default_markdown()) for s in settings]
    return "\n".join(lines)


def summary_table(settings: Sequence[Setting] = SETTINGS) -> str:
    """The main settings for README; its texts carry no links (they would be relative
    to docs/, not to the repository root)."""
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    for s in settings:
        text = s.summary_text
        if text is None:
            continue
        if "](" in text:
            raise ValueError(f"{s.env}: README's summary text must not link: {text!r}")
        lines.append(_row(f"`{s.env}`", text, s.default_markdown()))
    return "\n".join(lines)


def between(text: str, marker: str, table: str) -> str:
    """`text` with what lies between `<!-- marker:start -->` and `:end` replaced."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    head, found, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise ValueError(f"markers {start} and {end} not found")
    return f"{head}{start}\n{table}\n{end}{tail}"


def rendered(root: Path) -> dict[Path, str]:
    """Each file's text with its table rendered from the declaration."""
    out = {}
    for (name, marker), table in ((FULL, full_table()), (SUMMARY, summary_table())):
        path = root / name
        out[path] = between(path.read_text("utf-8"), marker, table)
    return out


def stale(root: Path) -> list[Path]:
    """The files whose table differs from the declaration."""
    return [path for path, text in rendered(root).items() if path.read_text("utf-8") != text]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite both tables, or with `--check` exit 1 naming each stale file."""
    parser = argparse.ArgumentParser(prog="python -m worker.settings.doc", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path(), help="the repository (default: .)")
    parser.add_argument("--check", action="store_true", help="only report stale tables")
    args = parser.parse_args(argv)
    if args.check:
        paths = stale(args.root)
        for path in paths:
            print(f"{path}: settings table out of date; run `{COMMAND}`", file=sys.stderr)  # noqa: T201 - a CLI
        return 1 if paths else 0
    for path, text in rendered(args.root).items():
        path.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
