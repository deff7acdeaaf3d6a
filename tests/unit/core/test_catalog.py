"""The catalog against in-process moto: write-last manifests, listing, chains, corrupt manifests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from support.catalog import moto_catalog

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.errors import BrokenChainError, ManifestError, RecoveryPointNotFoundError
from backup_pipelines.core.manifest import Manifest, ObjectEntry, OffsetRange

BUCKET = "catalog-test"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    with moto_catalog(BUCKET) as catalog:
        yield catalog


def point(rp_id: str, hours: int, *, base: str | None = None, state: str = "verified") -> Manifest:
    return Manifest(
        kind="clickhouse_snapshot",
        dataset="analytics",
        recovery_point_id=rp_id,
        captured_at=T0 + timedelta(hours=hours),
        location=f"s3://b/clickhouse/analytics/{rp_id}/",
        storage_class="STANDARD",
        objects=[ObjectEntry(key=f"clickhouse/analytics/{rp_id}/.backup", size=100 + hours)],
        row_counts={"analytics.events": 10 * hours},
        base=base,
        verification={"state": state},
    )


def test_write_then_read_round_trips_and_is_standard_class(catalog: Catalog) -> None:
    manifest = point("20261101T0100Z", 1)
    key = catalog.write(manifest)
    assert key == "catalog/clickhouse_snapshot/analytics/20261101T0100Z.json"
    head = catalog.s3.client.head_object(Bucket=BUCKET, Key=key)
    assert head.get("StorageClass", "STANDARD") == "STANDARD"
    assert head["ServerSideEncryption"] == "AES256"
    assert catalog.read("clickhouse_snapshot", "analytics", "20261101T0100Z") == manifest


def test_missing_point_is_a_clear_error(catalog: Catalog) -> None:
    with pytest.raises(
        RecoveryPointNotFoundError,
        match="no recovery point 'nope' for clickhouse_snapshot dataset 'analytics'",
    ):
        catalog.read("clickhouse_snapshot", "analytics", "nope")


def test_latest_verified_skips_unverified_and_failed(catalog: Catalog) -> None:
    catalog.write(point("a", 1))
    catalog.write(point("b", 2, base="a"))
    catalog.write(point("c", 3, base="b", state="unverified"))
    catalog.write(point("d", 4, state="failed"))
    newest = catalog.latest_verified("clickhouse_snapshot", "analytics")
    assert newest is not None and newest.recovery_point_id == "b"
    at_or_before = catalog.latest_verified(
        "clickhouse_snapshot", "analytics", at_or_before=T0 + timedelta(hours=1, minutes=30)
    )
    assert at_or_before is not None and at_or_before.recovery_point_id == "a"
    age = catalog.age_of_newest_verified("clickhouse_snapshot", "analytics", now=T0 + timedelta(hours=3))
    assert age == 3600


def test_corrupt_and_partial_manifests_are_skipped_named_and_never_latest(catalog: Catalog) -> None:
    catalog.write(point("a", 1))
    good_newer = point("z", 9).to_json()
    client = catalog.s3.client
    # A truncated upload of a newer point, a manifest of an unknown schema, and one with a wrong key.
    client.put_object(Bucket=BUCKET, Key="catalog/clickhouse_snapshot/analytics/t.json", Body=good_newer[:40])
    future = json.loads(point("f", 10).to_json())
    future["schema_version"] = 99
    client.put_object(
        Bucket=BUCKET, Key="catalog/clickhouse_snapshot/analytics/f.json", Body=json.dumps(future)
    )
    client.put_object(
        Bucket=BUCKET, Key="catalog/clickhouse_snapshot/analytics/renamed.json", Body=good_newer
    )
    listing = catalog.list_points("clickhouse_snapshot", "analytics")
    assert [p.recovery_point_id for p in listing.points] == ["a"]
    reasons = {i.key.rsplit("/", 1)[1]: i.reason for i in listing.invalid}
    assert "not valid JSON" in reasons["t.json"]
    assert "schema_version 99 is not supported" in reasons["f.json"]
    assert "does not match its key" in reasons["renamed.json"]
    newest = catalog.latest_verified("clickhouse_snapshot", "analytics")
    assert newest is not None and newest.recovery_point_id == "a"
    with pytest.raises(
        ManifestError, match=r"catalog/clickhouse_snapshot/analytics/t.json is not valid JSON"
    ):
        catalog.read("clickhouse_snapshot", "analytics", "t")


def test_chain_resolves_full_first(catalog: Catalog) -> None:
    for manifest in (point("a", 1), point("b", 2, base="a"), point("c", 3, base="b")):
        catalog.write(manifest)
    chain = catalog.chain(catalog.read("clickhouse_snapshot", "analytics", "c"))
    assert [m.recovery_point_id for m in chain] == ["a", "b", "c"]


def test_chain_reads_its_members_in_one_batch(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bases' manifests are read together (in parallel), not one member after the other."""
    ids = [f"p{i:02d}" for i in range(12)]
    for i, rp in enumerate(ids):
        catalog.write(point(rp, i + 1, base=ids[i - 1] if i else None))
    batches: list[list[str]] = []
    read_many = catalog.manifests.read_many

    def recording(kind: str, dataset: str, wanted: Iterable[str]) -> dict[str, Manifest]:
        batches.append(sorted(wanted))
        return read_many(kind, dataset, batches[-1])

    monkeypatch.setattr(catalog.manifests, "read_many", recording)
    listing = catalog.list_points("clickhouse_snapshot", "analytics")
    chain = catalog.chain(listing.manifest("p11"), listing=listing)
    assert [m.recovery_point_id for m in chain] == ids
    assert batches == [["p11"], ids[:-1]]
    assert [len(m.objects) for m in chain] == [1] * 12  # whole manifests, object lists included


def test_chain_with_missing_or_failed_base_is_broken(catalog: Catalog) -> None:
    catalog.write(point("b", 2, base="a"))
    with pytest.raises(BrokenChainError, match="depends on base a, whose manifest is missing"):
        catalog.chain(catalog.read("clickhouse_snapshot", "analytics", "b"))
    catalog.write(point("a", 1, state="failed"))
    with pytest.raises(BrokenChainError, match="which failed verification"):
        catalog.chain(catalog.read("clickhouse_snapshot", "analytics", "b"))


def test_mark_verification_persists(catalog: Catalog) -> None:
    manifest = point("a", 1, state="unverified")
    catalog.write(manifest)
    catalog.mark_verification(manifest, state="verified", checks=["system.backups", "file listing"])
    stored = catalog.read("clickhouse_snapshot", "analytics", "a")
    assert stored.is_verified and stored.verification.checks == ["system.backups", "file listing"]
    assert stored.verification.verified_at is not None


def test_naive_timestamps_and_unknown_fields_are_rejected() -> None:
    raw = json.loads(point("a", 1).to_json())
    raw["captured_at"] = "2026-11-01T01:00:00"
    with pytest.raises(ManifestError, match="captured_at: Value error, timestamps must carry a time zone"):
        Manifest.from_json(json.dumps(raw), "x.json")
    raw = json.loads(point("a", 1).to_json())
    raw["surprise"] = 1
    with pytest.raises(ManifestError, match="surprise"):
        Manifest.from_json(json.dumps(raw), "x.json")


def test_offset_ranges_count() -> None:
    assert OffsetRange(topic="t", partition=0, start_offset=10, end_offset=25).count == 15


def test_datasets_and_delete(catalog: Catalog) -> None:
    catalog.write(point("a", 1))
    assert catalog.datasets("clickhouse_snapshot") == ["analytics"]
    catalog.delete(catalog.read("clickhouse_snapshot", "analytics", "a"))
    assert not catalog.exists("clickhouse_snapshot", "analytics", "a")


def test_known_secrets_are_masked_in_stored_verification_details() -> None:
    from airflow.sdk._shared.secrets_masker import mask_secret

    from backup_pipelines.drill.results import CheckResult

    mask_secret("sentinel-secret-7f3a")
    detail = "Code: 499. S3 error for s3://b/k?X-Secret=sentinel-secret-7f3a: Access Denied"
    stored = json.loads(point("a", 1, state="failed").model_copy().to_json())
    stored["verification"]["detail"] = detail
    manifest = Manifest.from_json(json.dumps(stored), "x.json")
    assert "sentinel-secret-7f3a" not in manifest.to_json().decode()
    assert "Access Denied" in (manifest.verification.detail or "")
    check = CheckResult(name="clickhouse.restore", status="error", detail=detail)
    assert "sentinel-secret-7f3a" not in check.model_dump_json()
