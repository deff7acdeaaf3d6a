"""kafka_weekly_glacier_archive and kafka_archive_replay end to end on the embedded stack.

Two consecutive weekly runs, each after its week's events were written, archive every offset
exactly once (each run up to the end it observed: later-stamped events written before it are in
it, and counted); the retention guard fails a run with an email when offsets were deleted; a
replay of a window into a new topic reproduces keys, values, headers and timestamps byte for byte.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

WEEK1_END = datetime(2026, 2, 9, 4, tzinfo=UTC)  # Mondays 04:00 after the DAG start date
WEEK2_END = WEEK1_END + timedelta(days=7)
WEEK1_START = WEEK1_END - timedelta(days=7)
MESSAGES = 3_000
PARTITIONS = 3


def _dag(dag_id: str) -> Any:
    """Parse the DAG after ``write_config``, so it is built from the test's config."""
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _config(example_config: dict[str, Any], topic: str, **section: Any) -> dict[str, Any]:
    cfg = dict(example_config)
    # dag.test() of a DAG with a DeadlineAlert fails in Airflow 3.3 when the run succeeds
    # (DeadlineAlertModel.get_by_id is handed a dict); the deadline is not under test here.
    cfg["deadlines"] = {k: v for k, v in example_config["deadlines"].items() if not k.startswith("kafka")}
    cfg["kafka_archive"] = {
        **example_config["kafka_archive"],
        "file_max_bytes": 4096,
        "row_group_rows": 100,
        "topics": [{"name": topic}],
        **section,
    }
    return cfg


def _produced(bootstrap: str, topic: str) -> dict[int, list[tuple[int, int]]]:
    """(offset, timestamp ms) of every record per partition, read with a plain consumer."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}", "enable.partition.eof": True}
    )
    out: dict[int, list[tuple[int, int]]] = {}
    try:
        for p in range(PARTITIONS):
            consumer.assign([TopicPartition(topic, p, 0)])
            rows: list[tuple[int, int]] = []
            while True:
                msg = consumer.poll(10)
                assert msg is not None, f"{topic}[{p}]: no end of partition"
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF
                    break
                rows.append((msg.offset(), msg.timestamp()[1]))
            out[p] = rows
    finally:
        consumer.close()
    return out


def _seed(bootstrap: str, topic: str, week: int, **options: Any) -> None:
    """The events written before week ``week``'s run (``options`` go to ``seed_kafka``, e.g.
    ``retention_ms``, ``producer_config``): week 1 from 2 days before it, week 2 up to 3 days after
    it (written before its run, stamped after its window), so both edges are crossed."""
    from backup_pipelines.dev.sample_data import seed_kafka

    start, end = (
        (WEEK1_START - timedelta(days=2), WEEK1_END)
        if week == 1
        else (WEEK1_END, WEEK2_END + timedelta(days=3))
    )
    seed_kafka(
        bootstrap,
        topic,
        start=start,
        end=end,
        messages=MESSAGES // 2,
        partitions=PARTITIONS,
        seed=week,
        **{"retention_ms": 30 * 86_400_000, **options},
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_two_weekly_runs_archive_every_offset_once_then_replay_reproduces_a_window(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.kafka.client import KafkaClient
    from backup_pipelines.kafka.files import compare_records, verify_archive_file
    from backup_pipelines.kafka.parquet import read_records
    from backup_pipelines.kafka.replay import Replayer

    topic = f"e2e-archive-{uuid.uuid4().hex[:8]}"
    write_config(_config(example_config, topic))
    dag = _dag("kafka_weekly_glacier_archive")
    for week, end in enumerate((WEEK1_END, WEEK2_END), start=1):
        _seed(embedded_stack.kafka_bootstrap, topic, week)
        run = run_dag_in_process(dag, logical_date=end)
        assert str(run.state).endswith("success"), f"archive run for {end} ended {run.state}"
    produced = _produced(embedded_stack.kafka_bootstrap, topic)
    assert sum(len(v) for v in produced.values()) == MESSAGES

    cfg = load_config()
    catalog = Catalog.from_config(cfg)
    points = catalog.list_points("kafka_archive", topic).points
    assert [p.recovery_point_id for p in points] == ["20260209T040000Z", "20260216T040000Z"]
    first, second = points

    # Offsets: contiguous between the runs, and together exactly the records of the two windows.
    archived: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for point in points:
        assert point.is_verified and point.storage_class == "GLACIER"
        for obj in point.objects:
            assert obj.key.startswith(f"kafka/{topic}/partition={obj.partition}/")
            assert obj.key.endswith(f"/{obj.first_offset}-{obj.last_offset}.parquet")
            head = s3.head_object(Bucket=cfg.storage.archive_bucket, Key=obj.key)
            assert head["StorageClass"] == "GLACIER" and head["ContentLength"] == obj.size
            # GLACIER objects cannot be read before a restore: what a user would hit.
            restore_status = head.get("Restore")
            if restore_status is None:
                with pytest.raises(s3.exceptions.ClientError, match="InvalidObjectState"):
                    s3.get_object(Bucket=cfg.storage.archive_bucket, Key=obj.key)
            s3.restore_object(
                Bucket=cfg.storage.archive_bucket,
                Key=obj.key,
                RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}},
            )
            body = s3.get_object(Bucket=cfg.storage.archive_bucket, Key=obj.key)["Body"].read()
            local = embedded_stack.base_dir / f"{uuid.uuid4().hex}.parquet"
            local.write_bytes(body)
            check = verify_archive_file(local, obj.model_dump())
            assert check.ok, check.problems
            archived[obj.partition] += [r.offset for r in read_records(local)]
            local.unlink()
    first_ranges = {o.partition: o for o in first.offsets}
    for o in second.offsets:
        assert o.start_offset == first_ranges[o.partition].end_offset, "gap or overlap between runs"
    for p, rows in produced.items():
        # The first run starts at the window start; from there on every offset written before
        # the second run, whatever its timestamp, is archived once.
        expected = [off for off, ts in rows if ts >= _ms(WEEK1_START)]
        assert archived[p] == expected, f"partition {p}: archived offsets differ from what was written"
        assert len(set(archived[p])) == len(archived[p])
    assert first.message_count + second.message_count == sum(len(v) for v in archived.values())
    late = sum(1 for rows in produced.values() for _, ts in rows if ts >= _ms(WEEK2_END))
    assert late > 0 and second.details["stamped_outside_window"]["after"] == late
    assert first.details["stamped_outside_window"]["after"] == 0
    assert any(len([o for o in first.objects if o.partition == p]) > 1 for p in range(PARTITIONS)), (
        "file_max_bytes=4 KiB must split files"
    )
    assert first.details["retention_warning"] is None

    # Re-running an archived window is a no-op: same manifest, same objects.
    again = run_dag_in_process(dag, logical_date=WEEK1_END)
    assert str(again.state).endswith("success")
    assert catalog.read("kafka_archive", topic, first.recovery_point_id).objects == first.objects

    # Replay week 2 into a new topic; compare with the source, byte for byte.
    target = f"{topic}.replay"
    conf = {
        "topic": topic,
        "start_time": (WEEK2_END - timedelta(days=7)).isoformat(),
        "end_time": WEEK2_END.isoformat(),
        "target_topic": target,
        "dry_run": False,
        "restore_tier": "Standard",
    }
    run = run_dag_in_process(_dag("kafka_archive_replay"), run_conf=conf)
    assert str(run.state).endswith("success"), f"replay ended {run.state}"
    hook = Replayer(KafkaClient(kafka_conn_id=cfg.connections.kafka, group_id="e2e-check"))
    for p in range(PARTITIONS):
        source = [
            r
            for r in hook.read_back(topic, p)
            if r.timestamp_ms is not None and _ms(WEEK1_END) <= r.timestamp_ms < _ms(WEEK2_END)
        ]
        replayed = hook.read_back(target, p)
        assert source, f"partition {p} has no record in week 2"
        assert compare_records(source, replayed) == []
        assert [r.headers for r in replayed] == [r.headers for r in source]


def test_retention_guard_fails_with_an_email_when_offsets_were_deleted(
    embedded_stack: Any,
    faulty_kafka: Any,
    write_config: Any,
    example_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between two weekly runs the broker deletes a partition's oldest batches, past the end of
    the first archive, as retention would (Tansu's S3 store, tests/support/kafka_faults.py)."""
    from support.kafka_faults import SMALL_BATCHES

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    for key, value in faulty_kafka.connection_env().items():
        monkeypatch.setenv(key, value)
    topic = f"e2e-guard-{uuid.uuid4().hex[:8]}"
    # retention.ms of 3 days < 7-day window + 1-day grace: a warning in the manifest.
    write_config(_config(example_config, topic))
    options = {"retention_ms": 3 * 86_400_000, "producer_config": SMALL_BATCHES}
    _seed(faulty_kafka.bootstrap, topic, 1, **options)
    dag = _dag("kafka_weekly_glacier_archive")
    run = run_dag_in_process(dag, logical_date=WEEK1_END)
    assert str(run.state).endswith("success")
    catalog = Catalog.from_config(load_config())
    first = catalog.list_points("kafka_archive", topic).points[0]
    assert "retention.ms=259200000" in first.details["retention_warning"]
    end_p1 = next(o.end_offset for o in first.offsets if o.partition == 1)

    _seed(faulty_kafka.bootstrap, topic, 2, **options)
    low = faulty_kafka.drop_batches_through(topic, 1, end_p1)
    mails_before = len(embedded_stack.mailbox())
    run = run_dag_in_process(dag, logical_date=WEEK2_END)
    assert str(run.state).endswith("failed")
    assert [p.recovery_point_id for p in catalog.list_points("kafka_archive", topic).points] == [
        first.recovery_point_id
    ], "no manifest may be written for a window with lost offsets"
    mails = embedded_stack.mailbox()[mails_before:]
    loss = [m for m in mails if "DATA LOSS" in str(m["Subject"])]
    assert loss, [m["Subject"] for m in mails]
    body = loss[0].get_body(("html", "plain")).get_content()
    assert topic in str(loss[0]["Subject"])
    assert f"{topic}[1]: offsets {end_p1}-{low - 1} ({low - end_p1} events)" in body


def test_a_misspelt_topic_fails_the_run_before_any_partition_task_and_writes_nothing(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    """The run ends failed at its first task, with one line naming the topic and the closest
    existing one in the failure email; nothing is archived, catalogued or created."""
    from support.kafka import create_topic, topic_names

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    real = f"e2e-payments-{uuid.uuid4().hex[:6]}"
    typo = real.replace("payments", "paymnets")
    create_topic(embedded_stack.kafka_bootstrap, real, 2)
    write_config(_config(example_config, typo))
    mails_before = len(embedded_stack.mailbox())
    run = run_dag_in_process(_dag("kafka_weekly_glacier_archive"), logical_date=WEEK1_END)
    assert str(run.state).endswith("failed")
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["retention_guard"].endswith("failed")
    assert not states["archive_partition"].endswith("success"), "no partition task may run"
    line = f"Kafka topic {typo!r} does not exist on the cluster (closest existing: {real})"
    mails = embedded_stack.mailbox()[mails_before:]
    bodies = [html.unescape(m.get_body(("html", "plain")).get_content()) for m in mails]
    assert any(line in body for body in bodies), bodies
    assert typo not in topic_names(embedded_stack.kafka_bootstrap)
    cfg = load_config()
    assert "Contents" not in s3.list_objects_v2(Bucket=cfg.storage.archive_bucket, Prefix=f"kafka/{typo}/")
    assert Catalog.from_config(cfg).list_points("kafka_archive", typo).points == []


def test_a_replay_with_a_bad_param_or_a_live_target_fails_at_its_plan_creating_nothing(
    embedded_stack: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    """An offset range whose end is before its start, or a target topic another configured archive
    reads: the run fails at ``plan`` naming the param or the dataset that owns the target; no topic
    is created and nothing is produced."""
    from support.kafka import create_topic, produce_stamped, topic_names

    from backup_pipelines.kafka.client import KafkaClient
    from backup_pipelines.kafka.replay import Replayer

    bootstrap = embedded_stack.kafka_bootstrap
    topic, live = f"e2e-src-{uuid.uuid4().hex[:6]}", f"e2e-live-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, live, 1)
    produce_stamped(bootstrap, live, [(0, 1_700_000_000_000)] * 2)
    cfg = _config(example_config, topic)
    cfg["kafka_archive"]["topics"] = [{"name": topic}, {"name": live}]
    write_config(cfg)
    mails_before = len(embedded_stack.mailbox())
    for conf, line in (
        ({"start_offset": 500, "end_offset": 100}, "param end_offset: 100 is not after start_offset 500"),
        ({"target_topic": live}, f"target_topic {live!r} is the live topic of another archived dataset"),
    ):
        # A DAG parsed for each run: dag.test() in one process keeps an earlier run's conf.
        run = run_dag_in_process(
            _dag("kafka_archive_replay"), run_conf={"topic": topic, "dry_run": False, **conf}
        )
        assert str(run.state).endswith("failed")
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states["plan"].endswith("failed") and not states["replay"].endswith("success"), states
        mails = embedded_stack.mailbox()[mails_before:]
        assert any(line in html.unescape(m.get_body(("html",)).get_content()) for m in mails), line
    assert f"{topic}.replay" not in topic_names(bootstrap)
    reader = Replayer(KafkaClient(kafka_conn_id="kafka_default", group_id="e2e-check"))
    assert len(reader.read_back(live, 0)) == 2, "nothing may be produced into the live topic"
