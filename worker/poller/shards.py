"""Shard lineage: which shards may be read now, parents strictly before children, and
which aged-out shards took unread records with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from worker.core.models import Shard
from worker.state.checkpoints import Checkpoint


@dataclass(frozen=True)
class Lost:
    """A shard that aged out (24 h) before we finished it: its records after
    `after_sequence` (all of them when None) are gone."""

    shard_id: str
    after_sequence: str | None


@dataclass(frozen=True)
class Plan:
    """What a discovery round does with each shard listed or lost."""

    ready: list[Shard]  # may start now
    waiting: list[Shard]  # a parent is still being read
    lost: list[Lost]  # aged out with work we had not finished


def plan(
    shards: Iterable[Shard],
    checkpoints: Mapping[str, Checkpoint],
    active: set[str],
    aged_before_meeting: frozenset[str] = frozenset(),
    owing: frozenset[str] = frozenset(),
) -> Plan:
    """Pick the shards to start, and the aged-out ones whose unread records are lost.

    A child waits until its parent is finished. A shard missing from the stream has
    aged out: its children may start. Its unread records are lost if it was ours to
    read, whatever its generation: it holds an unfinished checkpoint (a grandparent
    whose whole lineage aged out included), or it is the missing parent of a listed
    shard and had not already aged out when the application first met the stream
    (`aged_before_meeting`), or it was listed at the meeting, may hold records that
    are ours (`owing`), and aged out before its first read was even recorded.
    """
    shards = list(shards)
    listed = {s.shard_id for s in shards}
    lost = {
        c.shard_id: Lost(c.shard_id, c.sequence_number)
        for c in checkpoints.values()
        if not c.finished and c.shard_id not in listed
    }
    for shard_id in sorted(owing - listed - checkpoints.keys()):
        lost[shard_id] = Lost(shard_id, None)
    ready: list[Shard] = []
    waiting: list[Shard] = []
    for shard in sorted(shards, key=lambda s: s.starting_sequence_int):
        own = checkpoints.get(shard.shard_id)
        if shard.shard_id in active or (own and own.finished):
            continue
        parent = shard.parent_id
        if parent and parent in listed and not _finished(checkpoints.get(parent)):
            waiting.append(shard)
            continue
        if (
            parent
            and parent not in listed
            and parent not in aged_before_meeting
            and not _finished(checkpoints.get(parent))
            and parent not in lost
        ):
            lost[parent] = Lost(parent, None)
        ready.append(shard)
    return Plan(ready, waiting, list(lost.values()))


def _finished(checkpoint: Checkpoint | None) -> bool:
    return checkpoint is not None and checkpoint.finished
