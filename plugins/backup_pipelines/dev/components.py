"""Airflow's components (api-server, dag-processor, triggerer, scheduler, workers) as child processes.

Each runs in its own process group (so ``stop`` reaches the task processes it forks), with
``PR_SET_PDEATHSIG`` (a killed parent leaves no orphan) and its output in ``<log_dir>/<name>.log``.
``dead()`` tells which exited and ``last_error`` the line a person needs from its log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from backup_pipelines.dev.processes import die_with_parent

_ERROR = re.compile(r"(Error|Exception|CRITICAL|ERROR|Traceback|refused|failed)")


def last_error(log_path: Path, lines: int = 200, offset: int = 0) -> str:
    """The last line of a log (from byte ``offset``) that reads like an error (else its last line)."""
    if not log_path.exists():
        return "(no log)"
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace").splitlines()[-lines:]
    tail = [line.strip() for line in text if line.strip()]
    errors = [line for line in tail if _ERROR.search(line)]
    return (errors or tail or ["(empty log)"])[-1][:400]


@dataclass
class AirflowComponents:
    """The Airflow processes started with one environment; logs under ``log_dir``."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """An ``airflow`` CLI command to completion, its output appended to ``<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            return subprocess.run(
                [self.airflow, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            proc = subprocess.Popen(
                [self.airflow, *args],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() reaches task and runner children
                preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only
            )
        self.procs[name] = proc
        return proc

    def dead(self) -> dict[str, int]:
        """Components that exited, with their exit codes."""
        return {name: proc.returncode for name, proc in self.procs.items() if proc.poll() is not None}

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return f"--- {name} ---\n" + "\n".join(text)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every process group, then SIGKILL what is left (grandchildren included)."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
