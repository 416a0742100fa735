"""Fleet mode: the worker's core as an amazon-kclpy record processor under the KCL.

`launcher.py` runs the Java MultiLangDaemon (kcl/, over the DynamoDB Streams Kinesis
Adapter); the daemon starts one `python -m worker kcl-processor` process per shard
lease (built by `worker.wiring`, its process plumbing in `child.py`), which speaks
amazon-kclpy's protocol on stdin/stdout (`processor.py`).
Kept free of imports: `worker.cli` reads DESCRIPTION for `--help`.
"""

DESCRIPTION = """\
Fleet mode: run the worker on the Kinesis Client Library (KCL 3) instead of the poller.

The KCL MultiLangDaemon (Java, built from kcl/ by `make fleet`) reads the stream
through the DynamoDB Streams Kinesis Adapter, balances shard leases across every
`worker kcl run` with the same ORDERSTREAM_APP, and starts one Python processor per
shard it holds. Each processor runs the poller's core unchanged (transition rules,
sinks, retries, DLQ) and checkpoints through the KCL after every batch, never past an
unresolved record. Run as many replicas as you like: a dead worker's shards move to
the others once their leases expire (ORDERSTREAM_KCL_FAILOVER_MS; up to ~2.5 minutes
when the dead worker was KCL's leader, whose lock lasts 2 minutes).

KCL keeps its state in its own DynamoDB tables, named after ORDERSTREAM_APP: the lease
table `<app>`, `<app>-CoordinatorState` and `<app>-WorkerMetricStats`. The DLQ stays in
ORDERSTREAM_STATE_TABLE. Notifications of the log sink and the processors' JSON log
lines come out on stdout, each as its own event; the daemon's own lines become
`kcl.daemon` events. SIGTERM/SIGINT: the daemon has each processor checkpoint, gives
up leadership and stops, then this exits 0 (a second signal, or ORDERSTREAM_SHUTDOWN_S
passing, kills it: exit 1).

Needs Java 8+ (`java` on PATH or JAVA_HOME), the jars in kcl/target/lib (or
ORDERSTREAM_KCL_JARS) and amazon-kclpy in this Python; exits 2 naming what is missing.
Settings are those of `worker run` plus the ORDERSTREAM_KCL_* ones below; the region
comes from AWS_REGION and endpoints from AWS_ENDPOINT_URL[_DYNAMODB[_STREAMS]].
"""
