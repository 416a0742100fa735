"""The operator commands' table output (on a TTY), without AWS."""

from __future__ import annotations

import pytest

from worker.admin import print_rows


def test_a_table_has_a_header_aligned_columns_and_dashes_for_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        {"shard_id": "shardId-1", "lag_ms": 0, "owner": None},
        {"shard_id": "shardId-22", "lag_ms": 1500, "owner": "host:1:ab"},
    ]
    print_rows(rows, ["shard_id", "lag_ms", "owner"], as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["shard_id", "lag_ms", "owner"]
    assert lines[1].split() == ["shardId-1", "0", "-"]
    assert lines[2].split() == ["shardId-22", "1500", "host:1:ab"]
    assert lines[1].index("0") == lines[2].index("1500")  # aligned


def test_json_lines_keep_none_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([{"a": None, "b": 1}], ["a", "b"], as_json=True)
    assert capsys.readouterr().out == '{"a": null, "b": 1}\n'
