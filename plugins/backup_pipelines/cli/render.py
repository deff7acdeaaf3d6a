"""What the CLI prints: rich tables on a terminal, one JSON document with ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

STATE_STYLE = {"verified": "green", "unverified": "yellow", "failed": "bold red"}


class Output:
    """Tables (stdout) and errors (stderr); in JSON mode, the data itself."""

    def __init__(self, *, json_mode: bool, console: Console | None = None) -> None:
        self.json_mode = json_mode
        self.console = console or Console(soft_wrap=False)
        if console is None and not self.console.is_terminal:  # a pipe or a file: no 80-column folding
            self.console = Console(soft_wrap=False, width=200)
        self.errors = Console(stderr=True, soft_wrap=True)

    def data(self, payload: Any) -> None:
        """The command's result as JSON (only in JSON mode)."""
        if self.json_mode:
            sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.json_mode:
            return
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold", justify="right" if column in NUMERIC else "left")
        for row in rows:
            table.add_row(*(styled(column, value) for column, value in zip(columns, row, strict=True)))
        self.console.print(table)

    def line(self, text: str) -> None:
        if not self.json_mode:
            self.console.print(text, highlight=False)

    def error(self, text: str) -> None:
        self.errors.print(f"[bold red]error:[/] {text}", highlight=False, markup=True)


NUMERIC = {"points", "bytes", "objects", "rows", "messages", "size", "invalid", "age"}


def styled(column: str, value: Any) -> str:
    text = "" if value is None else str(value)
    if column == "state" and text in STATE_STYLE:
        return f"[{STATE_STYLE[text]}]{text}[/]"
    return text.replace("[", "\\[")


def human_bytes(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
