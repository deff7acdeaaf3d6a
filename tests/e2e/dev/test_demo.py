"""`make demo` as a user runs it: exit code 0, every DAG run green, the summary and the drill table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backup_pipelines.dev.demo import DEMO_PLAN

pytestmark = pytest.mark.e2e


def test_demo_runs_every_pipeline_and_a_passing_drill(tmp_path: Path) -> None:
    # Its own process and working directory: the demo opens its own chDB directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BACKUP_PIPELINES"))}
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
    summary = out.split("backup-pipelines demo summary", 1)[1]
    for dag_id, _ in DEMO_PLAN:
        runs = [line for line in summary.splitlines() if line.strip().startswith(dag_id + " ")]
        assert runs and all(" success " in line for line in runs), f"{dag_id}: {runs}"
    assert "Recovery points in the catalog" in summary
    assert "report.json: PASSED" in summary
    assert "DR drill" in summary and "PASSED: 6 dataset(s)" in summary  # the summary email arrived
    assert "none verified" not in summary
