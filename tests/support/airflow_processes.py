"""Airflow components of a test deployment (scheduler, dag-processor, triggerer, api-server, workers).

The processes are ``backup_pipelines.dev.components.AirflowComponents`` (what ``make airflow`` runs):
each in its own process group, dying with pytest, its output in ``<base>/logs/<name>.log``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from backup_pipelines.dev.components import AirflowComponents, last_error


@dataclass
class AirflowProcesses:
    base: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.components = AirflowComponents(self.env, self.base / "logs", self.procs)

    @property
    def airflow(self) -> str:
        return self.components.airflow

    def run(self, *args: str, timeout: float = 120) -> str:
        """An ``airflow`` CLI command to completion; its output on failure."""
        done = subprocess.run(
            [self.airflow, *args], check=False, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self.components.start(name, *args, extra_env=extra_env)

    def tail(self, name: str, lines: int = 40) -> str:
        return self.components.tail(name, lines)

    def check_alive(self) -> None:
        dead = self.components.dead()
        assert not dead, (
            f"Airflow processes exited early: {dead}; logs in {self.base / 'logs'}\n"
            + "\n".join(f"{n}: {last_error(self.components.log_path(n))}\n{self.tail(n)}" for n in dead)
        )

    def stop(self, grace: float = 15.0) -> None:
        self.components.stop(grace)
