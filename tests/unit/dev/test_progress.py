"""make demo's progress: one line per step; a failure names the step, its error line and the log."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from backup_pipelines.dev.progress import Progress, StepFailed


def test_steps_print_one_line_each_and_their_output_goes_to_the_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    progress = Progress(tmp_path / "logs" / "demo.log")
    with progress.step("seed the data") as step:
        print("noise from a library")
        os.system("echo noise from a child process")
        step.detail = "3 rows"
    out = capfd.readouterr().out
    assert out.startswith("✓ seed the data  3 rows  ") and out.count("\n") == 1, out
    log = (tmp_path / "logs" / "demo.log").read_text()
    assert "noise from a library" in log and "noise from a child process" in log


def test_a_failed_step_prints_its_error_line_and_the_log_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "demo.log"
    progress = Progress(log_path)
    with progress.step("dr_drill manual", keep_going=True) as step:
        logging.getLogger("x").addHandler(logging.StreamHandler(sys.stderr))
        logging.getLogger("x").error("ERROR drill: restore of analytics failed: Code: 27")
        print("INFO cleaning up")
        step.failed = "failed"
    with pytest.raises(StepFailed), progress.step("gather the summary"):
        raise RuntimeError("the catalog could not be read")
    out = capfd.readouterr().out.splitlines()
    assert out[0].startswith("✗ dr_drill manual")
    assert out[1] == "    error: ERROR drill: restore of analytics failed: Code: 27"
    assert out[2] == f"    log:   {log_path}"
    assert out[3].startswith("✗ gather the summary")
    assert out[4] == "    error: RuntimeError: the catalog could not be read"
    assert len(progress.failures) == 2
