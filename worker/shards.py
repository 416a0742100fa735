"""Shard lineage: which shards may be read now, parents strictly before children."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from worker.checkpoints import Checkpoint
from worker.models import Shard


@dataclass(frozen=True)
class Plan:
    ready: list[Shard]  # may start now
    waiting: list[Shard]  # a parent is still being read
    lost_parents: list[str]  # parents we were reading that aged out before they finished


def plan(
    shards: Iterable[Shard],
    checkpoints: Mapping[str, Checkpoint],
    active: set[str],
) -> Plan:
    """Pick the shards to start.

    A child waits until its parent is finished. A parent missing from the stream has
    aged out (24 h): the child may start, and if we had an unfinished checkpoint on the
    parent its unread tail is lost, which the caller reports as data loss.
    """
    listed = {s.shard_id for s in shards}
    ready: list[Shard] = []
    waiting: list[Shard] = []
    lost: list[str] = []
    for shard in sorted(shards, key=lambda s: s.starting_sequence_int):
        own = checkpoints.get(shard.shard_id)
        if shard.shard_id in active or (own and own.finished):
            continue
        parent = shard.parent_id
        if parent and parent in listed and not _finished(checkpoints.get(parent)):
            waiting.append(shard)
            continue
        parent_checkpoint = checkpoints.get(parent) if parent else None
        if parent and parent not in listed and parent_checkpoint and not parent_checkpoint.finished:
            lost.append(parent)
        ready.append(shard)
    return Plan(ready, waiting, lost)


def _finished(checkpoint: Checkpoint | None) -> bool:
    return checkpoint is not None and checkpoint.finished
