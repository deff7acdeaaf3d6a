"""Chain-aware retention: the planning rules, and the S3 side (dry run, orphans, Object Lock) on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_pipelines.clickhouse.retention import ancestors, orphan_folders, plan_retention
from backup_pipelines.core.manifest import Manifest, Verification

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _point(hours_ago: float, base: str | None, *, state: str = "verified", rp: str | None = None) -> Manifest:
    captured = NOW - timedelta(hours=hours_ago)
    rp_id = rp or captured.strftime("%Y%m%dT%H%MZ")
    return Manifest(
        kind="clickhouse_snapshot",
        dataset="ds",
        recovery_point_id=rp_id,
        captured_at=captured,
        location=f"s3://b/clickhouse/ds/{rp_id}/",
        storage_class="STANDARD",
        base=base,
        verification=Verification(state=state),  # type: ignore[arg-type]
    )


def _chain(start_hours_ago: int, length: int, *, step: int = 1) -> list[Manifest]:
    points: list[Manifest] = []
    for n in range(length):
        points.append(_point(start_hours_ago - n * step, points[-1].recovery_point_id if points else None))
    return points


def _deleted(decisions: list[Any]) -> set[str]:
    return {d.recovery_point_id for d in decisions if d.action == "delete"}


def test_an_old_chain_goes_only_when_no_kept_increment_depends_on_it() -> None:
    old = _chain(24 * 10, 24)  # ten days ago, a full day: full + 23 increments, all expired
    straddling = _chain(24 * 7 + 3, 6)  # full 7d3h ago, increments into the retention window
    fresh = _chain(24, 5)
    decisions = plan_retention(old + straddling + fresh, now=NOW, retention_days=7, min_verified=1)
    deleted = _deleted(decisions)
    assert deleted == {p.recovery_point_id for p in old}
    # The expired full of the straddling chain stays: kept increments depend on it.
    reason = {d.recovery_point_id: d.reason for d in decisions}[straddling[0].recovery_point_id]
    assert "base of kept" in reason


def test_increments_are_deleted_before_their_bases() -> None:
    old = _chain(24 * 10, 4)
    decisions = plan_retention(old + _chain(2, 2), now=NOW, retention_days=7, min_verified=1)
    order = [d.recovery_point_id for d in decisions if d.action == "delete"]
    assert order == [p.recovery_point_id for p in reversed(old)]


def test_min_verified_chains_are_kept_whatever_their_age() -> None:
    a, b, c = _chain(24 * 30, 3), _chain(24 * 20, 3), _chain(24 * 10, 3)
    decisions = plan_retention(a + b + c, now=NOW, retention_days=7, min_verified=2)
    assert _deleted(decisions) == {p.recovery_point_id for p in a}


def test_nothing_is_deleted_without_a_newer_verified_point() -> None:
    old = _chain(24 * 10, 3)
    failed_newer = [_point(5, None, state="failed"), _point(4, None, state="unverified")]
    decisions = plan_retention(old + failed_newer, now=NOW, retention_days=7, min_verified=1)
    assert not _deleted(decisions)


def test_expired_failed_points_go_once_a_newer_verified_point_exists() -> None:
    broken = _point(24 * 9, None, state="failed")
    decisions = plan_retention([broken, *_chain(3, 2)], now=NOW, retention_days=7, min_verified=1)
    assert _deleted(decisions) == {broken.recovery_point_id}


def test_a_chain_with_a_missing_base_never_counts_as_a_verified_chain() -> None:
    orphan_inc = _point(24 * 9, "20200101T0000Z")
    older = _chain(24 * 12, 2)
    decisions = plan_retention([*older, orphan_inc], now=NOW, retention_days=7, min_verified=1)
    # older is the only intact verified chain: it is kept; the broken increment is not a cover.
    assert not ({p.recovery_point_id for p in older} & _deleted(decisions))
    assert ancestors(orphan_inc.recovery_point_id, {orphan_inc.recovery_point_id: orphan_inc}) == [
        "20200101T0000Z"
    ]


def test_orphans_need_no_manifest_and_the_grace_period() -> None:
    folders = {
        "s3://b/p/ds/A/": NOW - timedelta(hours=10),
        "s3://b/p/ds/B/": NOW - timedelta(hours=10),
        "s3://b/p/ds/C/": NOW - timedelta(minutes=5),
    }
    got = orphan_folders(folders, {"s3://b/p/ds/A/"}, now=NOW, grace=timedelta(hours=6))
    assert got == ["s3://b/p/ds/B/"]


# -- the S3 side, on moto ---------------------------------------------------------------------
@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    import json

    from moto import mock_aws

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO", json.dumps({"conn_type": "aws", "login": "k", "password": "s"})
    )
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lock-bucket", ObjectLockEnabledForBucket=True)
        yield client


def _cfg(**section: Any) -> Any:
    from backup_pipelines.core.config import BackupConfig

    return BackupConfig.model_validate(
        {
            "connections": {"aws": "aws_moto"},
            "storage": {"backup_bucket": "lock-bucket", "archive_bucket": "lock-bucket"},
            "alerts": {"recipients": ["a@example.com"]},
            "clickhouse_snapshots": {"datasets": [{"name": "ds", "database": "ds"}], **section},
        }
    )


def _store(client: Any, catalog: Any, point: Manifest, *, lock_until: datetime | None = None) -> None:
    key = point.location.removeprefix("s3://lock-bucket/") + "data.bin"
    extra: dict[str, Any] = {}
    if lock_until:
        extra = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": lock_until}
    client.put_object(Bucket="lock-bucket", Key=key, Body=b"x" * 10, **extra)
    catalog.write(point)


def test_apply_retention_dry_run_then_real_with_object_lock_and_orphans(moto_env: Any) -> None:

    from backup_pipelines.clickhouse.backups import BackupStore
    from backup_pipelines.clickhouse.retention import apply_retention
    from backup_pipelines.core.catalog import Catalog

    client = moto_env
    cfg = _cfg(min_verified=1)
    catalog = Catalog.open(aws_conn_id="aws_moto", bucket="lock-bucket", prefix="catalog/")
    store = BackupStore(catalog.s3)

    def relocate(p: Manifest) -> Manifest:
        return p.model_copy(update={"location": f"s3://lock-bucket/clickhouse/ds/{p.recovery_point_id}/"})

    old = [relocate(p) for p in _chain(24 * 10, 2)]
    locked = relocate(_point(24 * 9, None, rp="20261114T0000Z"))
    fresh = [relocate(p) for p in _chain(3, 2)]
    real_now = datetime.now(UTC)
    for p in old + fresh:
        _store(client, catalog, p)
    _store(client, catalog, locked, lock_until=real_now + timedelta(days=30))
    client.put_object(Bucket="lock-bucket", Key="clickhouse/ds/20261101T0000Z/data.bin", Body=b"crashed")

    # The clock is the real one for S3 timestamps; shift "now" so the orphan is past its grace.
    now = real_now + timedelta(hours=7)
    fresh = [p.model_copy(update={"captured_at": now - timedelta(hours=2)}) for p in fresh]
    for p in fresh:
        catalog.write(p)
    preview = apply_retention(cfg, catalog, store, now=now, dry_run=True)
    assert preview.dry_run
    assert set(preview.deleted) == {f"ds/{p.recovery_point_id}" for p in old}
    assert preview.orphans == ["s3://lock-bucket/clickhouse/ds/20261101T0000Z/"]
    assert any("20261114T0000Z" in item for item in preview.locked)
    assert len(catalog.list_points("clickhouse_snapshot", "ds").points) == 5, "a dry run deletes nothing"

    report = apply_retention(cfg, catalog, store, now=now, dry_run=False)
    assert set(report.deleted) == set(preview.deleted)
    left = {p.recovery_point_id for p in catalog.list_points("clickhouse_snapshot", "ds").points}
    assert left == {locked.recovery_point_id, *(p.recovery_point_id for p in fresh)}
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="lock-bucket", Prefix="clickhouse/")["Contents"]}
    assert not any(p.recovery_point_id in k for p in old for k in keys)
    assert not any("20261101T0000Z" in k for k in keys)
    assert any("20261114T0000Z" in k for k in keys), "the locked point's data stays"
