"""One line per step on the terminal (rich), every log line in a file: how ``make demo`` shows progress.

While a step runs, file descriptors 1 and 2 point at the log file, so the output of Airflow, the
engines and any child process lands there, not on the terminal; the terminal gets a spinner, then
one line per step with its state and duration. ``verbose`` streams the logs as well.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console

from backup_pipelines.dev.components import last_error

OK, FAILED = "[green]✓[/green]", "[red]✗[/red]"


class StepFailed(RuntimeError):
    """A step failed; its line, error and log were printed."""


@dataclass
class Step:
    title: str
    detail: str = ""
    failed: str | None = None  # set by the step when it finished but did not succeed


@dataclass
class Progress:
    log_path: Path
    verbose: bool = False
    console: Console = field(init=False)
    failures: list[str] = field(default_factory=list)
    _text: TextIO | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The terminal as it was: a copy of fd 1 that the redirection below does not touch.
        terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        self.console = Console(file=terminal, highlight=False, soft_wrap=True)

    def print(self, text: str = "") -> None:
        self.console.print(text, markup=False)

    @contextlib.contextmanager
    def step(self, title: str, *, keep_going: bool = False) -> Iterator[Step]:
        """Run one step; ``keep_going``: a failure is printed and recorded, and the caller goes on."""
        step = Step(title)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        started = time.monotonic()
        error: BaseException | None = None
        with self._status(title), self._captured(title):
            try:
                yield step
            except Exception as exc:
                error = exc
                step.failed = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        if step.failed is None:
            self.console.print(
                f"{OK} {title}{'  ' + step.detail if step.detail else ''}  [dim]{seconds:.1f}s[/dim]"
            )
            return
        reason = last_error(self.log_path, offset=offset) if error is None else step.failed
        self.console.print(f"{FAILED} {title}  [dim]{seconds:.1f}s[/dim]")
        self.console.print(f"    error: {reason}", markup=False)
        self.console.print(f"    log:   {self.log_path}", markup=False)
        self.failures.append(f"{title}: {reason}")
        if error is not None and not keep_going:
            raise StepFailed(title) from error

    def _python_streams(self) -> contextlib.AbstractContextManager[object]:
        """sys.stdout/stderr into the log too when they are not fds 1 and 2 (a test runner's capture).

        The file stays open: a library may keep the stream it saw (Airflow's logging does).
        """
        try:
            on_fds = sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):
            on_fds = False
        if on_fds:
            return contextlib.nullcontext()
        if self._text is None:
            self._text = self.log_path.open("a", buffering=1)
        stack = contextlib.ExitStack()
        stack.enter_context(contextlib.redirect_stdout(self._text))
        stack.enter_context(contextlib.redirect_stderr(self._text))
        return stack

    def _status(self, title: str) -> contextlib.AbstractContextManager[object]:
        if self.verbose or not self.console.is_terminal:
            return contextlib.nullcontext()
        return self.console.status(title)

    @contextlib.contextmanager
    def _captured(self, title: str) -> Iterator[None]:
        """fds 1 and 2 into the log file while the step runs (not with ``verbose``)."""
        with self.log_path.open("ab") as log:
            log.write(f"\n===== {title} =====\n".encode())
        if self.verbose:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with self.log_path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        try:
            with self._python_streams():
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
