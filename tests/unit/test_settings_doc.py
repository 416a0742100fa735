"""The settings tables of docs/configuration.md and README.md are the declaration's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from worker.settings import SETTINGS, Setting, WorkerSettings
from worker.settings.doc import COMMAND, between, main, rendered, stale, summary_table

ROOT = Path(__file__).resolve().parents[2]


def test_the_tables_match_the_declaration() -> None:
    """Run `make settings-doc` after changing a setting, and commit the result."""
    out_of_date = [str(path.relative_to(ROOT)) for path in stale(ROOT)]
    assert not out_of_date, f"{out_of_date}: run `{COMMAND}` and commit the result"


def test_every_setting_has_its_own_row() -> None:
    config = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    for setting in SETTINGS:
        assert config.count(f"| `{setting.env}` |") == 1, setting.env


def test_every_field_but_the_region_is_a_setting() -> None:
    fields = {f.name for f in dataclasses.fields(WorkerSettings)}
    assert fields - {s.name for s in SETTINGS} == {"region"}


def test_a_setting_is_declared_whole() -> None:
    for setting in SETTINGS:
        assert setting.help, setting.name
        assert setting.doc, setting.name
        assert setting.env == "ORDERSTREAM_" + setting.name.upper()
        assert getattr(WorkerSettings(), setting.name) == setting.default


def test_the_bounds_of_a_range_are_shown() -> None:
    (timeout,) = [s for s in SETTINGS if s.name == "webhook_timeout_ms"]
    assert timeout.accepts == "100..120000"
    row = next(
        line
        for line in rendered(ROOT)[ROOT / "docs" / "configuration.md"].splitlines()
        if line.startswith("| `ORDERSTREAM_WEBHOOK_TIMEOUT_MS` |")
    )
    assert "| 100..120000 | 10000 |" in row


def test_rendering_again_changes_nothing() -> None:
    """The markers stay where they were: rendering is idempotent."""
    text = "before\n<!-- t:start -->\nold\n<!-- t:end -->\nafter\n"
    once = between(text, "t", "| a |")
    assert once == "before\n<!-- t:start -->\n| a |\n<!-- t:end -->\nafter\n"
    assert between(once, "t", "| a |") == once


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="settings-table:start"):
        between("no markers", "settings-table", "| a |")


def test_readme_summary_texts_carry_no_links() -> None:
    """A docs-relative link would be broken from the repository root."""
    linked = dataclasses.replace(SETTINGS[0], summary="see [there](worker.md#x)")
    with pytest.raises(ValueError, match="ORDERSTREAM_TABLE"):
        summary_table([linked])
    plain: Setting = dataclasses.replace(SETTINGS[0], summary=True)
    assert "`ORDERSTREAM_TABLE` | the orders table | `Users` |" in summary_table([plain])


def test_check_names_a_stale_file_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("README.md", "docs/configuration.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text("utf-8"), "utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text("utf-8").replace("| 32 |", "| 16 |"), "utf-8")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert f"README.md: settings table out of date; run `{COMMAND}`" in capsys.readouterr().err
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    assert readme.read_text("utf-8") == (ROOT / "README.md").read_text("utf-8")
