"""The drill report model: verdicts, failures that name object and check, renderings, point picking."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.core.manifest import Manifest, Verification
from backup_pipelines.drill.plan import drill_id_for, pick_recovery_point, sample, seed_for
from backup_pipelines.drill.render import render_html, render_markdown, render_text_table
from backup_pipelines.drill.results import CHECK_RPO, CHECK_SHA256, CheckResult, DatasetResult, DrillReport

NOW = datetime(2026, 3, 7, 6, 0, tzinfo=UTC)


def _dataset(**overrides: object) -> DatasetResult:
    values: dict[str, object] = {
        "kind": "kafka_archive",
        "dataset": "events",
        "recovery_point_id": "2026-03-02T04",
        "captured_at": NOW - timedelta(minutes=10),
        "checks": [
            CheckResult(name=CHECK_SHA256, status="passed", object="kafka/events/partition=2/a.parquet")
        ],
        "rto_seconds": 12.0,
        "rto_objective_seconds": 1800,
        "rpo_seconds": 600,
        "rpo_objective_seconds": 3600,
        "bytes_restored": 2048,
    }
    values.update(overrides)
    return DatasetResult.model_validate(values)


def _report(*datasets: DatasetResult, tier1: list[CheckResult] | None = None) -> DrillReport:
    return DrillReport(
        dag_id="dr_drill",
        run_id="manual__2026-03-07T06:00:00+00:00",
        drill_id="d1",
        report_date="2026-03-07",
        started_at=NOW,
        finished_at=NOW + timedelta(minutes=3),
        pick="latest",
        seed=42,
        random_window_seconds=7 * 86400,
        datasets=list(datasets),
        tier1=tier1 or [],
    )


def test_healthy_report_passes_and_renders_one_row_per_dataset() -> None:
    report = _report(_dataset(), _dataset(kind="clickhouse_snapshot", dataset="analytics"))
    assert report.passed
    assert report.failures() == []
    md = render_markdown(report)
    assert "DR drill 2026-03-07: PASSED" in md
    # One unit per column: restore seconds, then hours for the objective, the point's age and the RPO.
    assert (
        "| kafka_archive/events | 2026-03-02T04 (latest) | 2026-03-07 05:50:00 | 1/1 | 12.0 | 0.5 | 0.17 | 1 "
        "| 2,048 | partitions 2 (1 object) | PASS |" in md
    )
    assert md.count("| PASS |") == 2
    html = render_html(report)
    assert html.count('<tr class="pass">') == 2
    assert json.loads(report.to_json())["datasets"][0]["bytes_restored"] == 2048
    assert "kafka_archive/events" in render_text_table(report)


def test_failed_check_names_the_object_and_the_check() -> None:
    bad = CheckResult(
        name=CHECK_SHA256, status="failed", object="kafka/events/b.parquet", detail="sha256 abc != def"
    )
    report = _report(_dataset(checks=[bad]))
    assert not report.passed
    (failure,) = report.failures()
    assert "archive.sha256 failed on kafka/events/b.parquet" in failure
    assert "FAIL" in render_markdown(report)
    assert '<tr class="fail">' in render_html(report)


def test_missed_objectives_fail_the_report() -> None:
    slow = _dataset(rto_seconds=4000.0)
    stale = _dataset(dataset="other", rpo_seconds=7200)
    none = _dataset(dataset="never", rpo_seconds=None)
    report = _report(slow, stale, none)
    failures = report.failures()
    assert any("objective.rto missed" in f and "66.7m" in f for f in failures)
    assert any(f.startswith("kafka_archive/other: " + CHECK_RPO) for f in failures)
    assert any("no verified recovery point" in f for f in failures)


def test_not_applicable_tier1_check_passes_but_a_breach_fails() -> None:
    na = CheckResult(name="tier1.clickhouse_replica_lag", status="not_applicable", detail="no replicas")
    assert _report(_dataset(), tier1=[na]).passed
    breach = CheckResult(name="tier1.kafka_replication_lag", status="failed", object="events[0]")
    report = _report(_dataset(), tier1=[na, breach])
    assert report.failures() == ["tier1: tier1.kafka_replication_lag failed on events[0]"]


def test_html_escapes_object_names() -> None:
    bad = CheckResult(name=CHECK_SHA256, status="failed", object="<script>x</script>")
    assert "<script>" not in render_html(_report(_dataset(checks=[bad])))


def _point(rp: str, hours_ago: float, state: str = "verified") -> Manifest:
    return Manifest(
        kind="clickhouse_snapshot",
        dataset="analytics",
        recovery_point_id=rp,
        captured_at=NOW - timedelta(hours=hours_ago),
        location=f"s3://b/{rp}/",
        storage_class="STANDARD",
        verification=Verification(state=state),  # type: ignore[arg-type]
    )


def test_pick_latest_skips_points_that_failed_verification() -> None:
    points = [_point("a", 30), _point("b", 2), _point("c", 1, state="failed")]
    chosen, candidates, _ = pick_recovery_point(
        points, mode="latest", window=timedelta(days=7), now=NOW, rng=random.Random(1)
    )
    assert chosen is not None and chosen.recovery_point_id == "b"
    assert candidates == 2


def test_pick_random_stays_in_window_and_is_reproducible_from_the_seed() -> None:
    points = [_point("old", 24 * 10)] + [_point(f"p{i}", i) for i in range(1, 20)]
    picks = {
        pick_recovery_point(
            points, mode="random", window=timedelta(days=1), now=NOW, rng=random.Random(seed)
        )[0].recovery_point_id  # type: ignore[union-attr]
        for seed in range(30)
    }
    assert "old" not in picks and len(picks) > 3
    one = pick_recovery_point(points, mode="random", window=timedelta(days=1), now=NOW, rng=random.Random(7))
    two = pick_recovery_point(points, mode="random", window=timedelta(days=1), now=NOW, rng=random.Random(7))
    assert one[0] is two[0]


def test_pick_random_with_nothing_in_window_says_why() -> None:
    chosen, candidates, why = pick_recovery_point(
        [_point("old", 24 * 10)], mode="random", window=timedelta(days=7), now=NOW, rng=random.Random(1)
    )
    assert chosen is None and candidates == 0
    assert "within 7.0d" in why


def test_seed_and_drill_id_are_stable_per_run() -> None:
    run_id = "scheduled__2026-03-07T06:00:00+00:00"
    assert seed_for(run_id) == seed_for(run_id) != seed_for(run_id + "x")
    assert seed_for(run_id, 5) == 5
    drill_id = drill_id_for(run_id)
    assert drill_id == drill_id_for(run_id)
    assert drill_id.replace("_", "").isalnum() and drill_id.islower()


def test_sample_is_reproducible_and_keeps_order() -> None:
    items = [f"k{i}" for i in range(10)]
    assert sample(items, 3, random.Random(3)) == sample(items, 3, random.Random(3))
    chosen = sample(items, 3, random.Random(3))
    assert chosen == sorted(chosen, key=items.index) and len(chosen) == 3
    assert sample(items[:2], 5, random.Random(3)) == items[:2]


def test_an_error_check_fails_the_report_and_says_it_could_not_run() -> None:
    from backup_pipelines.drill.results import CHECK_RESTORE

    error = CheckResult(
        name=CHECK_RESTORE,
        status="error",
        object="clickhouse_snapshot/analytics/p2",
        detail="check could not run",
    )
    report = _report(_dataset(kind="clickhouse_snapshot", dataset="analytics", checks=[error]))
    assert not report.passed
    assert "clickhouse.restore error on clickhouse_snapshot/analytics/p2: check could not run" in "; ".join(
        report.failures()
    )
    assert "ERROR: clickhouse.restore error" in render_markdown(report)


def test_freshness_before_the_drill_is_shown_but_does_not_decide_the_verdict() -> None:
    from backup_pipelines.drill.results import Freshness

    report = _report(_dataset())
    report.freshness_before = Freshness(ok=False, detail="kafka_archive/events: no verified recovery point")
    assert report.passed
    assert "RPO before the drill: NOT met (kafka_archive/events: no verified recovery point)" in (
        render_markdown(report)
    )
    assert "RPO before the drill: NOT met" in render_html(report)
    assert Freshness().describe() == "RPO before the drill: not measured"


def test_engine_failures_are_told_apart_from_outages() -> None:
    from backup_pipelines.drill.probes import classify_engine_failure, engine_message

    missing = (
        "restore bp-1 ended RESTORE_FAILED: Code: 499. DB::Exception: Failed to get object info: No response "
        "body.. HTTP response code: 404. (S3_ERROR), Stack trace (when copying this message, always include "
        "the lines below):\n\n0. ? @ 0x1"
    )
    assert engine_message(Exception(missing)).endswith("HTTP response code: 404. (S3_ERROR)")
    assert classify_engine_failure(engine_message(Exception(missing))) == "data"
    assert classify_engine_failure("Code: 1000. Poco::Exception. Connection refused") == "infrastructure"
    assert classify_engine_failure("HTTP response code: 503 SlowDown") == "infrastructure"
    assert classify_engine_failure("restore bp-2 still RESTORING after 7200s") == "infrastructure"
    assert classify_engine_failure("Code: 40. CHECKSUM_DOESNT_MATCH") == "data"
    assert classify_engine_failure("something new") is None


def test_archive_read_failures_tell_a_missing_object_from_s3_trouble() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from backup_pipelines.drill.probes import download_failure

    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code}}, "HeadObject")

    assert download_failure(client_error("404")) == ("data", "the object is missing from the archive")
    assert download_failure(client_error("NoSuchKey"))[0] == "data"
    kind, detail = download_failure(client_error("InvalidObjectState"), "restore timed out after 48h")
    assert kind == "infrastructure" and "restore timed out after 48h" in detail
    kind, detail = download_failure(EndpointConnectionError(endpoint_url="http://s3.example"))
    assert kind == "infrastructure" and "http://s3.example" in detail
    assert download_failure(client_error("SlowDown"))[0] == "infrastructure"


def test_report_tells_sampling_and_unconfigured_checks_apart_from_passes() -> None:
    checks = [
        CheckResult(name=CHECK_SHA256, status="passed", object="s3://b/kafka/events/partition=0/x.parquet"),
        CheckResult(name=CHECK_SHA256, status="passed", object="s3://b/kafka/events/partition=1/y.parquet"),
        CheckResult(name=CHECK_SHA256, status="passed", object="s3://b/kafka/events/partition=1/z.parquet"),
        CheckResult(name="kafka.replay_matches_archive", status="not_applicable", detail="no record sampled"),
    ]
    report = _report(_dataset(checks=checks))
    (row,) = report.table_rows()
    assert row[3] == "3/3, 1 not applicable"
    assert row[9] == "partitions 0, 1 (3 objects)"
    md = render_markdown(report)
    # No Tier 1 check configured: said in words, never "(none)".
    assert "### Tier 1\n- not configured: dr_drill.clickhouse_max_replica_lag" in md
    assert "(none)" not in md and "(none)" not in render_html(report)


def test_report_folders_are_per_run_and_safe_in_urls() -> None:
    from backup_pipelines.drill.render import day_prefix, render_index, report_prefix

    first = report_prefix("reports/dr-drill/", "2026-03-07", "manual__2026-03-07T06:00:00+00:00")
    second = report_prefix("reports/dr-drill/", "2026-03-07", "scheduled__2026-03-07T06:00:00+00:00")
    assert first == "reports/dr-drill/2026-03-07/manual__2026-03-07T06_00_00_00_00/"
    assert first != second and first.startswith(day_prefix("reports/dr-drill/", "2026-03-07"))
    entries = [{"run_id": "r1", "passed": False, "started_at": "2026-03-07T06:00:00", "folder": "r1/"}]
    data, page = render_index("2026-03-07", entries)
    assert json.loads(data)["drills"] == entries
    assert '<a href="r1/report.html">' in page and "FAILED" in page


def test_two_drills_the_same_day_keep_both_reports_an_index_and_email_links(
    moto_s3: Any, example_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.core import notify
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.drill.publish import ReportPublisher

    example_config["connections"] = {**example_config.get("connections", {}), "aws": "aws_unit"}
    example_config["dr_drill"]["report_url"] = "https://reports.example.com/{bucket}/{key}"
    cfg = BackupConfig.model_validate(example_config)
    moto_s3.create_bucket(Bucket=cfg.storage.backup_bucket)
    sent: list[notify.Message] = []
    monkeypatch.setattr(notify, "send", lambda message, **_: sent.append(message))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    publisher = ReportPublisher(cfg, BackupS3Hook(aws_conn_id="aws_unit"))

    failed = _report(_dataset(checks=[CheckResult(name=CHECK_SHA256, status="failed", object="k")]))
    rerun = _report(_dataset()).model_copy(update={"run_id": "manual__2026-03-07T09:00:00+00:00"})
    rerun.started_at = NOW + timedelta(hours=3)
    first, second = publisher.publish(failed), publisher.publish(rerun)
    retry = publisher.publish(rerun)  # the report task retried: a third folder, nothing overwritten

    assert len({first, second, retry}) == 3 and retry == second.rstrip("/") + "-2/"
    bucket = cfg.storage.backup_bucket
    keys = {o["Key"] for o in moto_s3.list_objects_v2(Bucket=bucket)["Contents"]}
    day = "reports/dr-drill/2026-03-07/"
    assert {day + "index.json", day + "index.html"} <= keys
    assert sum(k.endswith("/report.json") for k in keys) == 3
    old = json.loads(
        moto_s3.get_object(Bucket=bucket, Key=first.split(bucket + "/", 1)[1] + "report.json")["Body"].read()
    )
    assert old["run_id"] == failed.run_id and old["datasets"][0]["checks"][0]["status"] == "failed"
    index = json.loads(moto_s3.get_object(Bucket=bucket, Key=day + "index.json")["Body"].read())
    assert [(e["run_id"], e["passed"]) for e in index["drills"]][:2] == [
        (failed.run_id, False),
        (rerun.run_id, True),
    ]

    message = sent[0]
    assert message.subject.endswith("DR drill 2026-03-07 FAILED: 1 dataset(s)")
    link = f"https://reports.example.com/{bucket}/{first.split(bucket + '/', 1)[1]}report.html"
    assert f"Report: {link}" in message.text and f'<a href="{link}">' in message.html
    assert f"{first}report.html" in message.text  # the s3:// URI as well
    assert (
        "https://airflow.example.com/dags/dr_drill/runs/manual__2026-03-07T06%3A00%3A00%2B00%3A00"
        in message.text
    )
    assert message.html.startswith("<!DOCTYPE html>") and message.html.count("<html>") == 1
    assert "archive.sha256 failed on k" in message.text
