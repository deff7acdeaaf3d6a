"""`make demo` as a user runs it: exit code 0, one line per step, the summary, the reports kept locally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backup_pipelines.dev.demo import DEMO_PLAN

pytestmark = pytest.mark.e2e


def test_demo_shows_one_line_per_step_and_keeps_the_drill_report(tmp_path: Path) -> None:
    # Its own process and working directory: the demo opens its own chDB directory.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BACKUP_PIPELINES")) and k != "V"
    }
    done = subprocess.run(
        [sys.executable, "-m", "backup_pipelines.dev.demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    lines = out.splitlines()
    assert len(lines) <= 80, f"{len(lines)} lines on the terminal:\n{out}"
    # Every engine and Airflow log went to files, not to the terminal.
    assert "INFO" not in out and "[info" not in out, out
    logs = tmp_path / ".demo" / "logs"
    assert {"demo.log", "moto.log", "tansu.log", "smtp.log"} <= {p.name for p in logs.iterdir()}
    assert "Filling up the DagBag" in (logs / "demo.log").read_text()
    for dag_id, _ in DEMO_PLAN:
        steps = [line for line in lines if line.startswith(f"✓ {dag_id} ")]
        assert steps and all(" success " in line for line in steps), f"{dag_id}: {steps}"
    summary = out.split("backup-pipelines demo summary", 1)[1]
    assert "Recovery points in the catalog" in summary and "none verified" not in summary
    report_line = next(line for line in summary.splitlines() if line.endswith("report.html: PASSED"))
    report = tmp_path / report_line.removesuffix(": PASSED")
    assert report.is_file() and "PASSED" in report.read_text(), report_line
    assert (report.parent / "report.json").is_file()
    assert "DR drill" in summary and "PASSED: 6 dataset(s)" in summary  # the summary email arrived
