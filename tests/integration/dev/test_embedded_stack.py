"""The embedded stack: each service answers on its port, and nothing is left running after stop."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from backup_pipelines.dev.processes import port_is_open
from backup_pipelines.dev.stack import EmbeddedStack

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def test_each_service_answers_and_stop_leaves_nothing(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient

    stack = EmbeddedStack(tmp_path).start()
    try:
        s3 = stack.s3_client()
        s3.create_bucket(Bucket="probe-bucket")
        s3.put_object(Bucket="probe-bucket", Key="k", Body=b"v")
        assert s3.get_object(Bucket="probe-bucket", Key="k")["Body"].read() == b"v"
        # the DR region: a second S3 server, in us-west-2, that does not see the primary's buckets
        stack.create_buckets("probe-bucket-dr", region="dr")
        dr = stack.s3_client("dr")
        assert dr.get_bucket_location(Bucket="probe-bucket-dr")["LocationConstraint"] == "us-west-2"
        assert "probe-bucket" not in [b["Name"] for b in dr.list_buckets()["Buckets"]]

        metadata = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=10)
        assert metadata.brokers, "the Kafka broker answered with no brokers"

        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = "probe", "a@example.com", "b@example.com"
        msg.set_content("hello")
        with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)
        deadline = time.monotonic() + 5
        while not stack.mailbox() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m["Subject"] for m in stack.mailbox()] == ["probe"]

        env = stack.env()
        assert stack.s3_endpoint in env["AIRFLOW_CONN_AWS_DEFAULT"]
        assert f"chdb://{tmp_path}" in env["AIRFLOW_CONN_CLICKHOUSE_DEFAULT"]
        assert stack.s3_dr_endpoint in env["AIRFLOW_CONN_AWS_DR"]
        assert "us-west-2" in env["AIRFLOW_CONN_AWS_DR"]
        assert (tmp_path / "stack.env").read_text().count("export AIRFLOW_CONN_") == 5
        pids = stack.pids()
        ports = [s.port for s in stack.services.values()]
    finally:
        stack.stop()
    assert not [p for p in pids if _alive(p)], "services still running after stop()"
    assert not [p for p in ports if port_is_open(p)], "ports still answering after stop()"


def test_children_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the process that started the stack (a crashed test run) leaves no orphan."""
    parent = subprocess.Popen(
        [sys.executable, "-m", "backup_pipelines.dev.embedded", "up", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    state = tmp_path / "stack.json"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.exists(), "the stack did not come up"
    import json

    services = json.loads(state.read_text())
    pids = [s["pid"] for s in services.values()]
    assert all(_alive(p) for p in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "orphans left after the parent was killed"


def test_ctrl_c_stops_the_stack_cleanly(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-m", "backup_pipelines.dev.embedded", "up", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    state = tmp_path / "stack.json"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    import json

    pids = [s["pid"] for s in json.loads(state.read_text()).values()]
    parent.send_signal(signal.SIGINT)
    assert parent.wait(30) == 0
    assert not [p for p in pids if _alive(p)]
