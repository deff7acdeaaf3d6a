"""What a backup's parts hold: stored rows, the rows ``count()`` shows, and pending mutations.

A part is immutable: its name fixes its stored rows and its lightweight-delete mask (a
``DELETE FROM`` writes a new part, ``all_1_1_0`` -> ``all_1_1_0_2``, with the same stored rows and
fewer visible ones). So the manifest records, per table of a backup:

- ``part_rows``: stored rows of each backed-up part (what ``system.parts`` of the restored parts
  shows while merges are stopped);
- ``visible_rows``: the rows ``count()`` shows (rows masked by ``_row_exists`` excluded), what a
  restore shows before merges resume;
- ``pending_mutations``: ``ALTER DELETE/UPDATE`` commands that had not yet rewritten a backed-up
  part: the backup holds the part before the mutation, and so does a restore (RESTORE brings
  back parts, not the pending mutation: the restore log names it to be re-issued).

A table whose visible rows cannot be known (a masked part merged away before it could be counted)
is left out of ``visible_rows`` and named in ``visible_rows_unknown``; its restore check then
compares stored rows only. Manifests written before these fields compare stored rows only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backup_pipelines.clickhouse.engine import ClickHouseEngine
from backup_pipelines.clickhouse.sql import quote_identifier, render_sql

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartState:
    """One part as ``system.parts`` knows it."""

    rows: int
    masked: bool  # a lightweight DELETE hides some of its rows
    active: bool


@dataclass
class PartRows:
    """The rows of the parts of one backup, per table (see the module's doc)."""

    part_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    visible_rows: dict[str, int] = field(default_factory=dict)
    visible_rows_unknown: dict[str, str] = field(default_factory=dict)
    pending_mutations: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """The manifest's ``details`` entries."""
        return {
            "part_rows": self.part_rows,
            "visible_rows": self.visible_rows,
            "visible_rows_unknown": self.visible_rows_unknown,
            "pending_mutations": self.pending_mutations,
        }


def part_states(
    engine: ClickHouseEngine, database: str, tables: Iterable[str]
) -> dict[tuple[str, str], PartState]:
    """``system.parts`` of some tables: (table, part) -> state."""
    names = sorted(set(tables))
    if not names:
        return {}
    rows = engine.query_file("part_state.sql", {"database": database, "tables": names})
    return {
        (str(t), str(p)): PartState(int(n), bool(int(masked)), bool(int(active)))
        for t, p, n, masked, active in rows
    }


def visible_part_rows(
    engine: ClickHouseEngine, database: str, table: str, parts: list[str]
) -> dict[str, int]:
    """Rows ``count()`` shows in some active parts of one table (masked rows excluded)."""
    if not parts:
        return {}
    sql = render_sql("visible_part_rows.sql", table=f"{quote_identifier(database)}.{quote_identifier(table)}")
    return {str(part): int(n) for part, n in engine.query(sql, {"parts": sorted(parts)})}


def pending_mutations(
    engine: ClickHouseEngine, database: str, parts: Mapping[str, list[str]]
) -> dict[str, list[dict[str, str]]]:
    """Mutations not applied yet to a backed-up part: table -> [{mutation_id, command}]."""
    if not parts:
        return {}
    rows = engine.query_file("pending_mutations.sql", {"database": database, "tables": sorted(parts)})
    out: dict[str, list[dict[str, str]]] = {}
    for table, mutation_id, command, to_do in rows:
        if set(map(str, to_do or ())) & set(parts.get(str(table), ())):
            out.setdefault(str(table), []).append({"mutation_id": str(mutation_id), "command": str(command)})
    return out


def capture(
    engine: ClickHouseEngine,
    database: str,
    parts: Mapping[str, list[str]],
    stored: Mapping[str, int],
    *,
    states: Mapping[tuple[str, str], PartState],
    seen_visible: Mapping[str, Mapping[str, int]] | None = None,
) -> PartRows:
    """Stored and visible rows of the parts a backup holds (``parts``: table -> part names;
    ``stored``: table -> stored rows from the listing); ``seen_visible``: visible rows per part
    counted before the backup started (a masked part merged away since is still known);
    ``states``: ``part_states`` of (at least) these tables, read after the backup ended."""
    out = PartRows()
    for table, names in sorted(parts.items()):
        known = {p: states[(table, p)] for p in names if (table, p) in states}
        if len(known) == len(names):  # else the stored total (row_counts) is all that is known
            out.part_rows[table] = {p: s.rows for p, s in sorted(known.items())}
        masked = [p for p, s in known.items() if s.masked]
        counted = dict((seen_visible or {}).get(table, {}))
        counted.update(visible_part_rows(engine, database, table, [p for p in masked if known[p].active]))
        unknown = sorted(set(masked) - set(counted)) + sorted(set(names) - set(known))
        if unknown:
            out.visible_rows_unknown[table] = (
                f"part(s) {', '.join(unknown)} merged away before their visible rows were counted"
            )
            log.warning("Visible rows of %s.%s unknown: %s", database, table, out.visible_rows_unknown[table])
            continue
        out.visible_rows[table] = sum(counted.get(p, s.rows) for p, s in known.items())
    for table in stored:
        if table not in parts:  # a table without parts (empty, or a view): nothing stored or shown
            out.part_rows[table] = {}
            out.visible_rows[table] = 0
    out.pending_mutations = pending_mutations(engine, database, parts)
    if out.pending_mutations:
        log.info(
            "Mutations pending at capture (the backup holds the parts before them): %s",
            out.pending_mutations,
        )
    return out


def masked_visible_rows(
    engine: ClickHouseEngine, database: str, tables: Iterable[str]
) -> dict[str, dict[str, int]]:
    """Visible rows of the active masked parts of some tables, counted now (before a backup starts)."""
    states = part_states(engine, database, tables)
    by_table: dict[str, list[str]] = {}
    for (table, part), state in states.items():
        if state.masked and state.active:
            by_table.setdefault(table, []).append(part)
    return {
        table: visible_part_rows(engine, database, table, parts) for table, parts in sorted(by_table.items())
    }
