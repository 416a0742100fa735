"""Checkpoints and meetings in the state table are keyed by the stream (defect 9)."""

from __future__ import annotations

import pytest

from tests.conftest import MotoServer
from tests.dynamodb_helpers import client_for
from worker.core.models import Shard
from worker.state.checkpoints import LATEST, TRIM_HORIZON, Checkpoint, DynamoCheckpointStore
from worker.state.statetable import ensure_state_table

USERS = "arn:aws:dynamodb:us-east-1:123456789012:table/Users/stream/2024-05-01T00:00:00.000"
OTHER = "arn:aws:dynamodb:us-east-1:123456789012:table/Other/stream/2024-05-01T00:00:00.000"
RECREATED = USERS.replace("2024-05-01", "2024-06-01")
SHARD = "shardId-00000001714521600001-00000001"  # moto gives every table this same id


@pytest.fixture
def store(moto_server: MotoServer) -> DynamoCheckpointStore:
    client = client_for(moto_server.url)
    ensure_state_table(client, "orderstream-state")
    return DynamoCheckpointStore(client, "orderstream-state", "orderstream", None, lambda: 1.0)


def test_another_table_or_a_recreated_stream_never_inherits_a_checkpoint(
    store: DynamoCheckpointStore,
) -> None:
    """Defect 9: `ORDERSTREAM_TABLE=Other worker run` under the default app resumed from
    the Users table's checkpoint (same shard id on moto) and skipped Other's records."""
    store.save(USERS, Checkpoint(SHARD, "4900", False))

    assert store.load_all(USERS) == {SHARD: Checkpoint(SHARD, "4900", False, updated_at_ms=1000)}
    assert store.load_all(OTHER) == {}
    assert store.load_all(RECREATED) == {}


def test_each_stream_has_its_own_meeting(store: DynamoCheckpointStore) -> None:
    shards = [Shard(SHARD, None, "100", None)]
    first = store.meet(USERS, LATEST, shards)
    again = store.meet(USERS, TRIM_HORIZON, [])  # a restart: the first meeting stands
    other = store.meet(OTHER, TRIM_HORIZON, shards)

    assert (first.start, first.met_shards) == (LATEST, frozenset({SHARD}))
    assert again == first
    assert other.start == TRIM_HORIZON
    assert store.met_streams(USERS.split("/stream/", maxsplit=1)[0]) == {USERS: False}
    store.finish_stream(USERS)
    assert store.met_streams(USERS.split("/stream/", maxsplit=1)[0]) == {USERS: True}
