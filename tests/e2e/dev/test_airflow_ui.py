"""`make airflow`: Airflow's UI on the embedded stack, every DAG parsed, and Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backup_pipelines.dev.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler, pytest.mark.timeout(300)]


def _processes_of(home: Path) -> list[int]:
    """Processes whose environment points at this Airflow home or stack (any depth of children)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "status").read_text()
        except OSError:
            continue
        if str(home).encode() in environ and "\nState:\tZ" not in state:
            found.append(int(proc.name))
    return found


def test_ui_comes_up_with_every_dag_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backup_pipelines.dev.embedded",
            "airflow",
            "--dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db = tmp_path / "airflow" / "airflow.db"
    try:
        deadline = time.monotonic() + 180
        healthy, dags, errors = False, 0, -1
        while time.monotonic() < deadline and not (healthy and dags >= 8):
            time.sleep(2)
            assert parent.poll() is None, "make airflow exited early"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
                    healthy = r.status == 200
                with sqlite3.connect(db) as conn:
                    dags = conn.execute("select count(*) from dag where is_stale = 0").fetchone()[0]
                    errors = conn.execute("select count(*) from import_error").fetchone()[0]
            except (OSError, sqlite3.Error):
                continue
        assert healthy, "the Airflow API never answered healthy"
        assert dags >= 8 and errors == 0, f"{dags} DAGs parsed, {errors} import errors"
    finally:
        parent.send_signal(signal.SIGINT)  # what Ctrl-C sends to the parent
        try:
            parent.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(parent.pid, signal.SIGKILL)  # never leave a stack behind a failed test
            raise
    deadline = time.monotonic() + 30
    while _processes_of(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(tmp_path), "processes left running after Ctrl-C"
