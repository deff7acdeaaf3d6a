"""SQL statements kept in ``include/sql/``: read without their leading comment lines, their ``$slots``
filled with pre-quoted fragments or with SQL files of ``include/sql/``, never with values (values
are always bound as query parameters)."""

from __future__ import annotations

import string

from backup_pipelines.core.config.paths import SQL_ROOT


def load_sql(path: str) -> str:
    """``include/sql/<path>`` without its comment lines."""
    text = (SQL_ROOT / path).read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("--")).strip()


def render_sql(path: str, **fragments: str) -> str:
    """Fill the ``$name`` slots of ``include/sql/<path>`` with pre-quoted fragments."""
    return string.Template(load_sql(path)).substitute(fragments)
