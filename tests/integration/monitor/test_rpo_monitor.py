"""backup_rpo_monitor on the embedded stack: one breach email per breach, one recovery email, status JSON.

The catalog, the status JSON and the emails are real (moto S3 server, SMTP sink over sockets). The
config gets its own catalog prefix, status key and dataset names, so other tests in the session
cannot change what this one sees.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.integration


@pytest.fixture
def monitor_config(write_config, example_config) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    raw = dict(example_config)
    raw["storage"] = {**example_config["storage"], "replica": None, "catalog_prefix": f"catalog-rpo-{tag}/"}
    raw["alerts"] = {"recipients": ["oncall-rpo@example.com"], "from_email": "bp@example.com"}
    raw["clickhouse_snapshots"] = {
        **example_config["clickhouse_snapshots"],
        "datasets": [
            {"name": f"fresh_{tag}", "database": "analytics", "objectives": {"rpo": "1h"}},
            {"name": f"stale_{tag}", "database": "analytics", "objectives": {"rpo": "1h"}},
        ],
    }
    raw["emr_archive"] = {**example_config["emr_archive"], "jobs": []}
    raw["kafka_archive"] = {**example_config["kafka_archive"], "topics": []}
    raw["deep_archive_exports"] = {**example_config["deep_archive_exports"], "exports": []}
    raw["rpo_monitor"] = {"schedule": "*/15 * * * *", "status_key": f"status/rpo-{tag}.json"}
    write_config(raw)
    return {"tag": tag, "raw": raw}


def _write_point(
    s3: Any,
    cfg: dict[str, Any],
    dataset: str,
    captured_at: datetime,
    state: str,
    *,
    kind: str = "clickhouse_snapshot",
    details: dict[str, Any] | None = None,
) -> str:
    from support.catalog import ClientS3Hook

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.manifest import Manifest, Verification

    hook = ClientS3Hook(s3)

    point_id = f"{captured_at:%Y%m%dT%H%M%S}Z-{secrets.token_hex(2)}"
    Catalog(hook, bucket=cfg["storage"]["backup_bucket"], prefix=cfg["storage"]["catalog_prefix"]).write(
        Manifest(
            kind=kind,
            dataset=dataset,
            recovery_point_id=point_id,
            captured_at=captured_at,
            location=f"s3://{cfg['storage']['backup_bucket']}/{kind}/{dataset}/{point_id}/",
            storage_class="STANDARD",
            verification=Verification(state=state, verified_at=captured_at),
            details=details or {},
        )
    )
    return point_id


def _status(s3: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    body = s3.get_object(Bucket=cfg["storage"]["backup_bucket"], Key=cfg["rpo_monitor"]["status_key"])["Body"]
    return json.loads(body.read())


def test_breach_emails_once_then_recovers(embedded_stack, s3, dagbag, monitor_config) -> None:
    tag, cfg = monitor_config["tag"], monitor_config["raw"]
    fresh, stale = f"fresh_{tag}", f"stale_{tag}"
    dag = dagbag.dags["backup_rpo_monitor"]
    now = datetime.now(UTC)
    _write_point(s3, cfg, fresh, now - timedelta(minutes=10), "verified")
    old = _write_point(s3, cfg, stale, now - timedelta(hours=3), "verified")
    _write_point(s3, cfg, stale, now - timedelta(minutes=5), "unverified")  # not a recovery point yet

    def mine() -> list[Any]:
        return [m for m in embedded_stack.mailbox() if tag in str(m["Subject"])]

    tick = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    run = run_dag_in_process(dag, logical_date=tick - timedelta(minutes=30))
    assert str(run.state).endswith("success")
    [breach] = mine()
    assert breach["Subject"].startswith(f"[RPO BREACH] clickhouse_snapshot/{stale}: newest verified")
    assert breach["To"] == "oncall-rpo@example.com"
    body = breach.get_body(("html",)).get_content()
    assert old in body and "3h" in body
    status = _status(s3, cfg)
    by_name = {d["dataset"]: d for d in status["datasets"]}
    assert by_name[fresh]["fresh"] is True and 500 < by_name[fresh]["age_seconds"] < 900
    assert by_name[stale]["fresh"] is False and by_name[stale]["newest_verified"] == old
    assert status["state"][f"clickhouse_snapshot/{stale}"]["breached"] is True

    # 15 minutes later, still breached: nothing new in the mailbox.
    run = run_dag_in_process(dag, logical_date=tick - timedelta(minutes=15))
    assert str(run.state).endswith("success")
    assert len(mine()) == 1

    # The next snapshot lands and is verified: one recovery email, state cleared.
    new = _write_point(s3, cfg, stale, datetime.now(UTC) - timedelta(minutes=1), "verified")
    run = run_dag_in_process(dag, logical_date=tick)
    assert str(run.state).endswith("success")
    emails = mine()
    assert len(emails) == 2
    assert emails[1]["Subject"].startswith(f"[RPO RECOVERED] clickhouse_snapshot/{stale}: back within RPO")
    assert new in emails[1].get_body(("html",)).get_content()
    status = _status(s3, cfg)
    assert status["state"][f"clickhouse_snapshot/{stale}"]["breached"] is False
    assert {d["dataset"]: d["fresh"] for d in status["datasets"]} == {fresh: True, stale: True}


def test_a_kafka_topic_with_short_retention_is_flagged_in_every_monitor_run(
    embedded_stack, s3, write_config, monitor_config
) -> None:
    """The weekly archive records a retention warning on its manifest; the monitor shows it in
    its status JSON and summary every run, and in the breach email when there is one."""
    from backup_pipelines.core.config import load_config
    from backup_pipelines.monitor.service import run_monitor

    tag, cfg = monitor_config["tag"], dict(monitor_config["raw"])
    topic, risky = f"events_{tag}", f"events_short_{tag}"
    cfg["kafka_archive"] = {
        **cfg["kafka_archive"],
        "topics": [{"name": topic}, {"name": risky, "objectives": {"rpo": "1h"}}],
        # An hourly archive: the config refuses an RPO shorter than the schedule's longest gap.
        "schedule": "0 * * * *",
    }
    write_config(cfg)
    warning = f"topic {risky!r}: retention.ms=259200000 (72.0 h) is shorter than the archive window"
    now = datetime.now(UTC)
    _write_point(s3, cfg, topic, now - timedelta(days=1), "verified", kind="kafka_archive")
    _write_point(
        s3,
        cfg,
        risky,
        now - timedelta(days=2),
        "verified",
        kind="kafka_archive",
        details={"retention_warning": warning},
    )

    # Both topics exist on the cluster (a configured topic that does not is a warning of its own).
    from support.kafka import create_topic

    for name in (topic, risky):
        create_topic(embedded_stack.kafka_bootstrap, name, 1)
    for _ in range(2):  # every run, not only when something changes
        summary = run_monitor(load_config(), run_id=f"rpo-{tag}", gauge=lambda *a: None).summary()
        # The topics hold no records, so each also gets the idle-topic warning; the retention
        # warning is the risky topic's alone.
        assert warning in summary["warnings"][f"kafka_archive/{risky}"]
        assert "retention.ms" not in summary["warnings"].get(f"kafka_archive/{topic}", "")
        by_name = {d["dataset"]: d for d in _status(s3, cfg)["datasets"]}
        assert warning in by_name[risky]["warning"]
        assert "retention.ms" not in (by_name[topic]["warning"] or "")

    [breach] = [m for m in embedded_stack.mailbox() if risky in str(m["Subject"])]
    assert breach["Subject"].startswith(f"[RPO BREACH] kafka_archive/{risky}")
    assert "retention.ms=259200000" in breach.get_body(("html",)).get_content()


def test_a_dataset_fed_from_kafka_shows_its_effective_rpo_in_status_summary_and_email(
    embedded_stack, s3, write_config, monitor_config
) -> None:
    """The snapshot is 3 h old (RPO 1 h: a breach), but it recorded its ingest offsets and the topic
    still holds every event since: the monitor says what a restore with replay recovers now (0 s)
    next to the snapshot age, in the status JSON, the task's summary and the breach email."""
    from support.kafka import create_topic

    from backup_pipelines.core.config import load_config
    from backup_pipelines.dev.ingest import produce_events
    from backup_pipelines.monitor.service import run_monitor

    tag, cfg = monitor_config["tag"], dict(monitor_config["raw"])
    fed, topic, group = f"fed_{tag}", f"ingest-{tag}", f"ingest-g-{tag}"
    cfg["clickhouse_snapshots"] = {
        **cfg["clickhouse_snapshots"],
        "datasets": [
            {
                "name": fed,
                "database": "analytics",
                "objectives": {"rpo": "1h"},
                "ingest": {"topics": [topic], "consumer_groups": [group]},
            }
        ],
    }
    write_config(cfg)
    create_topic(embedded_stack.kafka_bootstrap, topic, 2)
    produce_events(embedded_stack.kafka_bootstrap, topic, 0, 40, partitions=2)
    now = datetime.now(UTC)
    point = _write_point(
        s3,
        cfg,
        fed,
        now - timedelta(hours=3),
        "verified",
        details={"ingest_offsets": {group: {topic: {"0": 7, "1": 9}}}},
    )

    summary = run_monitor(load_config(), run_id=f"rpo-{tag}", gauge=lambda *a: None).summary()
    key = f"clickhouse_snapshot/{fed}"
    assert summary["breached"] == [key]  # the snapshot RPO is still what pages
    assert summary["effective_rpo"][key].startswith(f"0s: {point} + Kafka since its offsets, no hole")
    [status] = [d for d in _status(s3, cfg)["datasets"] if d["dataset"] == fed]
    assert status["fresh"] is False and status["age_seconds"] > 3 * 3600 - 60
    assert status["effective_rpo"]["seconds"] == 0.0 and status["effective_rpo"]["point"] == point
    [breach] = [m for m in embedded_stack.mailbox() if fed in str(m["Subject"])]
    body = breach.get_body(("html",)).get_content()
    assert "Effective RPO (snapshot + Kafka replay)" in body and f"0s: {point}" in body
    assert f"0s: {point}" in breach.get_body(("plain",)).get_content()
