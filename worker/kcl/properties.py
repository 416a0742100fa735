"""The MultiLangDaemon properties file, built from the worker's settings, pure.

Standard MultiLangDaemon keys, plus the shim's `streamArn` and
`dynamoDBStreamsEndpoint` (kcl/src/.../StreamsMultiLangDaemon.java).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.core.errors import SetupError
from worker.settings import WorkerSettings
from writer.awsenv import NO_REGION

# The JVM needs this long to exit after the graceful shutdown it was given.
EXIT_MARGIN_MS = 3000
MIN_GRACE_MS = 1000


@dataclass(frozen=True)
class Endpoints:
    """Endpoint overrides as boto3 reads them from the environment (None: AWS's own)."""

    dynamodb: str | None
    streams: str | None
    kinesis: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Endpoints:
        """AWS_ENDPOINT_URL and its per-service variants, as boto3 reads them."""
        common = env.get("AWS_ENDPOINT_URL") or None
        dynamodb = env.get("AWS_ENDPOINT_URL_DYNAMODB") or common
        streams = env.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS") or common
        # KCL builds a Kinesis client that the adapter never calls; if DynamoDB is
        # overridden (a local emulator), keep that client pointed there too.
        kinesis = env.get("AWS_ENDPOINT_URL_KINESIS") or common or dynamodb
        return cls(dynamodb, streams, kinesis)


def shutdown_grace_ms(settings: WorkerSettings) -> int:
    """The daemon's graceful-shutdown budget, inside ORDERSTREAM_SHUTDOWN_S."""
    return max(MIN_GRACE_MS, settings.shutdown_s * 1000 - EXIT_MARGIN_MS)


def build(
    settings: WorkerSettings,
    *,
    stream_arn: str,
    worker_id: str,
    executable: str,
    endpoints: Endpoints,
    credentials: str,
    python_version: str,
) -> str:
    """The properties file's text. `executable` may not contain spaces (KCL splits it)."""
    if not settings.region:
        raise SetupError(NO_REGION)
    values: dict[str, str | int | None] = {
        "executableName": executable,
        "applicationName": settings.app,
        "workerId": worker_id,  # the lease table's leaseOwner: host:pid:nonce
        "streamArn": stream_arn,
        "initialPositionInStream": settings.start,
        "processingLanguage": f"python/{python_version}",
        "regionName": settings.region,
        "AwsCredentialsProvider": credentials,
        "dynamoDBStreamsEndpoint": endpoints.streams,
        "dynamoDBEndpoint": endpoints.dynamodb,
        "kinesisEndpoint": endpoints.kinesis,
        "retrievalMode": "POLLING",
        # The adapter forces this on (with a warning); say so up front.
        "skipShardSyncAtWorkerInitializationIfLeasesExist": "true",
        # Worker metrics (CPU-aware lease balancing) read the EC2/ECS/EKS metadata
        # endpoints; leases are balanced by throughput instead.
        "disableWorkerMetrics": "true",
        "metricsLevel": settings.kcl_metrics,
        "failoverTimeMillis": settings.kcl_failover_ms,
        "leaseAssignmentIntervalMillis": settings.kcl_assignment_ms,
        "parentShardPollIntervalMillis": settings.kcl_parent_poll_ms,
        "maxLeasesForWorker": settings.kcl_max_leases,
        "idleTimeBetweenReadsInMillis": settings.idle_wait_ms,
        # Every fetch reaches the processor, an empty one too: `/readyz` of `worker kcl
        # run` wants to know that an idle shard is still being read.
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "shutdownGraceMillis": shutdown_grace_ms(settings),
    }
    lines = ["# Written by `worker kcl run` from ORDERSTREAM_* and AWS_* settings."]
    lines += [f"{key} = {_escape(str(val))}" for key, val in values.items() if val is not None]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    """A java.util.Properties value that reads back as `value` with Properties.load().

    KCL loads the file from an InputStream, which Java reads as ISO-8859-1: UTF-8 bytes
    would come back garbled (`josé` as `josÃ©`). So everything outside printable ASCII
    is written as `\\uXXXX` (UTF-16 code units, as Java's own `store()` does), the
    backslash is doubled, and a leading space is escaped (load() strips it).
    """
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char in _NAMED:
            out.append(_NAMED[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            encoded = char.encode("utf-16-be", "surrogatepass")
            units = [encoded[i : i + 2].hex().upper() for i in range(0, len(encoded), 2)]
            out.extend(f"\\u{unit}" for unit in units)
    text = "".join(out)
    return "\\" + text if text.startswith(" ") else text


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}
