"""Airflow components (scheduler, dag-processor, triggerer, api-server, workers) as child processes.

Each runs in its own process group (so ``stop`` reaches the task processes they fork) and with
``PR_SET_PDEATHSIG`` (so a killed pytest leaves no orphan).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from backup_pipelines.dev.processes import die_with_parent

PG_HOST, PG_PORT, REDIS_PORT = "127.0.0.1", 5432, 6379


def reachable(port: int, host: str = PG_HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@dataclass
class AirflowProcesses:
    base: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def run(self, *args: str, timeout: float = 120) -> str:
        """An ``airflow`` CLI command to completion; its output on failure."""
        done = subprocess.run(
            [self.airflow, *args], check=False, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        (self.base / "logs").mkdir(parents=True, exist_ok=True)
        with (self.base / "logs" / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [self.airflow, *args],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() reaches task and runner children
                preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only
            )

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.base / "logs" / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return f"--- {name} ---\n" + "\n".join(text)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, (
            f"Airflow processes exited early: {dead}; logs in {self.base / 'logs'}\n"
            + "\n".join(self.tail(name) for name in dead)
        )

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
