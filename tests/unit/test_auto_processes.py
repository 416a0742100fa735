"""`ORDERSTREAM_PROCESSES=auto`: where shards are read, and how many cores count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from worker.core.models import Shard
from worker.core.runtime import Signal
from worker.poller.multiproc import AutoLauncher, _cgroup_quota

Placed = list[tuple[str, str]]


class EndedTask:
    """A reader handle whose shard has ended (the tests look only at placement)."""

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        del timeout


class RecordingLauncher:
    """Stands in for the in-process ThreadLauncher or the reader processes: records
    which shards it was given; `grow_to` counts processes as ProcessLauncher does."""

    def __init__(self, name: str, placed: Placed) -> None:
        self._name = name
        self._placed = placed
        self.started = 0
        self.stopped = self.closed = False

    def open(self, stop: Signal) -> None:
        del stop

    def expect(self, shards: int) -> None:
        del shards

    def grow_to(self, processes: int) -> None:
        self.started = max(self.started, processes)

    def start(
        self,
        stream_arn: str,
        shard: Shard,
        checkpoint: object,
        initial: str,
        on_end: Callable[[], None],
    ) -> EndedTask:
        del stream_arn, checkpoint, initial, on_end
        self._placed.append((self._name, shard.shard_id))
        return EndedTask()

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


def _shard(shard_id: str) -> Shard:
    return Shard(shard_id=shard_id, parent_id=None, starting_sequence="1", ending_sequence=None)


def _auto(cores: int) -> tuple[AutoLauncher, RecordingLauncher, Placed]:
    placed: Placed = []
    pool = RecordingLauncher("processes", placed)
    auto = AutoLauncher(local=RecordingLauncher("here", placed), processes=pool, cores=cores)
    return auto, pool, placed


def _start(auto: AutoLauncher, *shard_ids: str) -> None:
    auto.expect(len(shard_ids))
    for shard_id in shard_ids:
        auto.start("arn", _shard(shard_id), None, "TRIM_HORIZON", lambda: None)


def test_one_shard_is_read_in_this_process_and_starts_no_reader_process() -> None:
    auto, pool, placed = _auto(cores=8)
    _start(auto, "s1")
    assert placed == [("here", "s1")]
    assert pool.started == 0


def test_several_shards_go_to_reader_processes_one_per_core_up_to_the_shards() -> None:
    auto, pool, placed = _auto(cores=2)
    _start(auto, "s1", "s2", "s3", "s4")
    assert pool.started == 2
    assert placed == [("processes", s) for s in ("s1", "s2", "s3", "s4")]

    auto, pool, _ = _auto(cores=8)
    _start(auto, "s1", "s2", "s3")
    assert pool.started == 3


def test_a_shard_read_here_stays_here_when_more_shards_arrive() -> None:
    auto, pool, placed = _auto(cores=4)
    _start(auto, "s1")
    auto.expect(3)  # s1 still read here, two more about to start
    for shard_id in ("s2", "s3"):
        auto.start("arn", _shard(shard_id), None, "LATEST", lambda: None)
    assert placed == [("here", "s1"), ("processes", "s2"), ("processes", "s3")]
    assert pool.started == 3


def test_stop_and_close_reach_both_sides() -> None:
    placed: Placed = []
    local, pool = RecordingLauncher("here", placed), RecordingLauncher("processes", placed)
    auto = AutoLauncher(local=local, processes=pool, cores=2)
    auto.stop()
    auto.close()
    assert (local.stopped, local.closed) == (True, True)
    assert (pool.stopped, pool.closed) == (True, True)


@pytest.mark.parametrize(
    ("content", "cores"),
    [("max 100000", None), ("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1),
     ("garbage", None), ("", None)],
)  # fmt: skip
def test_a_cgroup_cpu_quota_caps_the_cores_rounded_up(
    tmp_path: Path, content: str, cores: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(content + "\n")
    assert _cgroup_quota(path) == cores


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert _cgroup_quota(tmp_path / "absent") is None
