"""Zero data loss with ``replay: replay_topic`` end to end (dag.test()): the ingestion keeps running
and also reads ``<topic>.replay``; the catch-up produces there what the restore lost (the topic's
events since the point's offsets up to what the ingestion has committed, and, first, what retention
deleted, from the weekly archive) and moves no offset.

The ingestion is ``dev.ingest.IngestConsumer`` (commits after inserting, reads the replay topic
once it exists), run in this process on the session's chDB; each test has its own database, topic
and group.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import recovery as rec

from backup_pipelines.core.runs import hour_floor
from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

W1 = datetime(2026, 6, 1, 4, tzinfo=UTC)


def test_replay_topic_gives_back_every_event_through_the_replay_topic_and_dry_run_changes_nothing(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from support.kafka import topic_names

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.ingest import produce_events

    bootstrap = embedded_stack.kafka_bootstrap
    db, topic, group, ingest = rec.setup(
        clickhouse_client,
        bootstrap,
        write_config,
        example_config,
        "a",
        prefix="replay_topic",
        replay="replay_topic",
    )
    replay = f"{topic}.replay"
    values = produce_events(bootstrap, topic, 0, 300, partitions=2)
    assert ingest.drain() == 300
    # The duplicate window: 50 events inserted, the commit not done yet when the BACKUP starts.
    values += produce_events(bootstrap, topic, 300, 50, partitions=2)
    assert ingest.drain(commit=False) == 50
    dags = rec.dags()
    rec.ran(
        run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=hour_floor(datetime.now(UTC)))
    )
    point = Catalog.from_config(load_config()).list_points(rec.KIND, db).points[-1]
    assert point.details["ingest_offsets"] == {group: {topic: {"0": 150, "1": 150}}}
    assert point.row_counts["stream"] == 350

    values += produce_events(bootstrap, topic, 350, 200, partitions=2)
    assert ingest.drain() == 250  # the 50 uncommitted again, then 200 new: committed up to 275
    clickhouse_client.command(f"DROP TABLE {db}.stream SYNC")
    # Events the running ingestion has not consumed yet (it consumes them itself, after the restore).
    values += produce_events(bootstrap, topic, 550, 40, partitions=2)

    # Dry run: the plan, and nothing changed (no replay topic, no offset moved).
    before = rec.group_offsets(bootstrap, group, topic, 2)
    assert before == {0: 275, 1: 275}
    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=rec.conf(db, dry_run=True))
    assert rec.ran(run)["replay_since_capture"] == "success"
    plan = rec.xcom(run, "replay_since_capture")
    assert plan["dry_run"] is True and plan["mode"] == "replay_topic" and plan["holes"] == []
    for p in (0, 1):
        part = plan["partitions"][f"{topic}[{p}]"]
        assert part["recorded"] == {group: 150} and part["end"] == 295
        assert part["topic"] == [150, 275] and part["archive"] is None  # up to what the group committed
    assert replay not in topic_names(bootstrap)
    assert rec.group_offsets(bootstrap, group, topic, 2) == before
    assert not clickhouse_client.query(f"EXISTS TABLE {db}.stream").result_rows[0][0]  # dry run: no restore

    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=rec.conf(db))
    assert rec.ran(run) == {"restore": "success", "replay_since_capture": "success"}
    result = rec.xcom(run, "replay_since_capture")
    assert result["plan"]["mode"] == "replay_topic"
    assert result["topic_records"] == {f"{topic}[0]": 125, f"{topic}[1]": 125}
    assert result["archive_records"] == {}
    # Not consumed yet: the 20 new events of each partition, and the 125 re-fed ones.
    assert result["lag"][group] == {f"{topic}[{p}]": 20 for p in (0, 1)} | {
        f"{replay}[{p}]": 125 for p in (0, 1)
    }
    assert result["caught_up"] is False
    assert result["plan"]["window"]["from"] == point.details["ingest_read_at"]
    assert rec.group_offsets(bootstrap, group, topic, 2) == before  # the running ingestion's offsets
    # The replay topic holds each event since the recorded offsets once, in offset order, with
    # its source position.
    assert rec.sources_in(bootstrap, replay) == {p: [(topic, p, o) for o in range(150, 275)] for p in (0, 1)}
    assert clickhouse_client.query(f"SELECT count() FROM {db}.stream").result_rows[0][0] == 350

    assert ingest.drain() == 290  # the running ingestion: 20 + 20 new, 125 + 125 re-fed
    final = rec.rows(clickhouse_client, db, final=True)
    assert len(final) == 590
    assert sorted(r[3] for r in final) == sorted(values)
    assert {r[0] for r in final} == {topic}  # re-fed events keep their source position
    every = rec.rows(clickhouse_client, db, final=False)
    refed = {(p, o) for _, p, o, _, via in every if via == replay}
    assert refed == {(p, o) for p in (0, 1) for o in range(150, 275)}
    assert {(p, o) for _, p, o, _, via in every if o >= 275 and via == topic} == {
        (p, o) for p in (0, 1) for o in range(275, 295)
    }
    # Only events of the stated window (inserted before the BACKUP, committed after) came twice.
    window = {(p, o) for p in (0, 1) for o in range(150, 175)}
    assert set(rec.twice(clickhouse_client, db)) == window
    assert rec.group_offsets(bootstrap, group, topic, 2) == {0: 295, 1: 295}
    assert rec.group_offsets(bootstrap, group, replay, 2) == {0: 125, 1: 125}


def test_replay_topic_feeds_the_archive_for_what_retention_deleted_then_the_topic(
    faulty_kafka: Any,
    clickhouse_client: Any,
    write_config: Any,
    example_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.kafka import run_window, weekly_archive

    from backup_pipelines.dev.ingest import produce_events

    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    bootstrap = faulty_kafka.bootstrap
    db, topic, group, ingest = rec.setup(
        clickhouse_client,
        bootstrap,
        write_config,
        example_config,
        "b",
        prefix="replay_topic",
        replay="replay_topic",
    )
    replay = f"{topic}.replay"
    values = rec.snapshot_between(bootstrap, topic, ingest, before=100, after=200)
    dags = rec.dags()
    config = rec.config(example_config, db, topic, group, replay="replay_topic")
    weekly = weekly_archive(write_config, config, topic)  # the same config, with the topic archived
    _, (archive,) = run_window(weekly, W1 - timedelta(days=7), W1)
    assert {o.partition: (o.start_offset, o.end_offset) for o in archive.offsets} == {
        0: (0, 150),
        1: (0, 150),
    }
    values += produce_events(bootstrap, topic, 300, 60, partitions=2)
    ingest.drain()
    # Retention deletes the oldest events since the snapshot (offsets 50.. of each partition).
    lows = {p: faulty_kafka.drop_batches_through(topic, p, 74) for p in (0, 1)}
    assert all(50 < low <= 150 for low in lows.values()), lows
    clickhouse_client.command(f"DROP TABLE {db}.stream SYNC")
    values += produce_events(bootstrap, topic, 360, 20, partitions=2)  # not consumed yet

    run = run_dag_in_process(dags["clickhouse_restore"], run_conf=rec.conf(db))
    rec.ran(run)
    result = rec.xcom(run, "replay_since_capture")
    assert result["archive_records"] == {f"{topic}[{p}]": lows[p] - 50 for p in (0, 1)}
    assert result["topic_records"] == {f"{topic}[{p}]": 180 - lows[p] for p in (0, 1)}
    for p in (0, 1):
        part = result["plan"]["partitions"][f"{topic}[{p}]"]
        assert part["archive"] == [50, lows[p]] and part["topic"] == [lows[p], 180]
    assert rec.group_offsets(bootstrap, group, topic, 2) == {0: 180, 1: 180}  # nothing reset
    # The archived range first, then the topic's, each event once.
    assert rec.sources_in(bootstrap, replay) == {p: [(topic, p, o) for o in range(50, 180)] for p in (0, 1)}

    assert ingest.drain() == 2 * 130 + 2 * 10
    final = rec.rows(clickhouse_client, db, final=True)
    assert len(final) == 380
    assert sorted(r[3] for r in final) == sorted(values)
    assert {r[0] for r in final} == {topic}  # archived events keep their source position
    assert rec.twice(clickhouse_client, db) == []  # committed before the BACKUP: no duplicate window
