"""A config error fails every DAG file the same way, with the one line naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            ("clickhouse_snapshots", "schedule", "0 25 * * *"),
            "clickhouse_snapshots.schedule: '0 25 * * *' is not",
        ),
        (("dr_drill", "schedule", "weekly"), "dr_drill.schedule: 'weekly' is not a cron schedule"),
        (("kafka_archive", "schedule", "0 4 1 * *"), "kafka_archive.topics[0].objectives.rpo: 8d (events)"),
    ],
)
def test_every_dag_file_fails_with_the_same_line(
    write_config: Any, example_config: dict[str, Any], change: tuple[str, str, str], line: str
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    section, key, value = change
    example_config[section][key] = value
    path = write_config(example_config)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert sorted(Path(f).name for f in bag.import_errors) == [p.name for p in DAG_FILES]
    messages = {error.strip().splitlines()[-1] for error in bag.import_errors.values()}
    assert len(messages) == 1, messages
    (message,) = messages
    assert f"invalid config {path}: {line}" in message
