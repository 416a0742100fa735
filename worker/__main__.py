"""`python -m worker <entry>`: the processes the worker starts itself, as opposed to the
`worker` command. `kcl-processor` is the record processor the KCL MultiLangDaemon starts
for each shard (fleet mode); it is built by the composition root, `worker.wiring`."""

import sys

from worker import wiring

ENTRIES = {"kcl-processor": wiring.kcl_processor_main}

if __name__ == "__main__":
    entry = ENTRIES.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if entry is None:
        sys.exit(f"python -m worker: unknown entry; one of {', '.join(ENTRIES)}")
    raise SystemExit(entry())
