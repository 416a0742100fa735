"""The MultiLangDaemon properties file reads back, in Java, as the values written.

KCL loads it with `Properties.load(InputStream)`, which decodes ISO-8859-1: UTF-8 text
came back garbled. Checked with the real `java` (single-file source launch, Java 11+)
on tests/java/ReadProperties.java; skipped where there is no Java.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from worker.kcl import properties
from worker.settings import WorkerSettings

READER = Path(__file__).resolve().parents[1] / "java" / "ReadProperties.java"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Users/stream/2024-05-01T00:00:00.000"
TRICKY = [
    "/home/josé/orderstream/processor",  # Latin-1 range: was read as "josÃ©"
    "/srv/注文/processor",
    "host-😀:42:abc",  # outside the BMP: a surrogate pair in Java
    " leading space",
    "back\\slash and \\u0041 literally",
    "a=b:c #not a comment ! nor this",
    "tab\there\nnewline\rreturn\fform",
    "\x00\x1b\x7f\x85\u202e",
    "",
]

java = pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH")


def read_in_java(path: Path) -> dict[str, str]:
    result = subprocess.run(
        ["java", str(READER), str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    values = {}
    for line in result.stdout.splitlines():
        key, _, hexed = line.partition("\t")
        values[key] = bytes.fromhex(hexed).decode("utf-16-be")  # pairs become one character
    return values


def test_the_file_is_pure_ascii() -> None:
    text = "\n".join(f"k{n} = {properties._escape(value)}" for n, value in enumerate(TRICKY))
    assert text.isascii()


@java
def test_every_value_reads_back_in_java_as_written(tmp_path: Path) -> None:
    path = tmp_path / "escapes.properties"
    lines = [f"k{n} = {properties._escape(value)}" for n, value in enumerate(TRICKY)]
    path.write_bytes(("\n".join(lines) + "\n").encode("ascii"))
    assert read_in_java(path) == {f"k{n}": value for n, value in enumerate(TRICKY)}


@java
def test_the_daemon_properties_carry_a_non_ascii_path_and_worker_id(tmp_path: Path) -> None:
    settings = WorkerSettings.from_env({"AWS_REGION": "eu-west-1"})
    text = properties.build(
        settings,
        stream_arn=ARN,
        worker_id="hôte-1:7:abc",
        executable="/home/josé/orderstream/processor",
        endpoints=properties.Endpoints(None, None, None),
        credentials="DefaultCredentialsProvider",
        python_version="3.11",
    )
    path = tmp_path / "kcl.properties"
    path.write_text(text, encoding="utf-8")  # as the launcher writes it: ASCII either way
    read = read_in_java(path)
    assert read["executableName"] == "/home/josé/orderstream/processor"
    assert read["workerId"] == "hôte-1:7:abc"
    assert read["streamArn"] == ARN
