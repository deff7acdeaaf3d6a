"""Archive keys and ids, and the upload check of a file S3 keeps in parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.kafka.archive import object_key, recovery_point_id


def test_keys_and_ids_are_deterministic() -> None:
    assert recovery_point_id(datetime(2026, 11, 16, 4, tzinfo=UTC)) == "20261116T040000Z"
    assert object_key("kafka/", "events", 3, 100, 199) == "kafka/events/partition=3/100-199.parquet"


def test_an_archive_file_uploaded_in_parts_is_checked_against_s3s_composite_sha256(
    moto_s3: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the part size S3 keeps a checksum of the parts' checksums, not the file's SHA-256:
    the upload is checked against that, and a mismatch is still caught."""
    import os

    from backup_pipelines.core.checksums import file_sha256
    from backup_pipelines.core.config import Encryption
    from backup_pipelines.core.errors import ChecksumMismatchError
    from backup_pipelines.core.s3 import BackupS3Hook
    from backup_pipelines.kafka import archive as kafka_archive
    from backup_pipelines.kafka.archive import upload_archive_file
    from backup_pipelines.kafka.parquet import ArchiveFile

    moto_s3.create_bucket(Bucket="archive")
    path = tmp_path / "0-9.parquet"
    path.write_bytes(os.urandom(11 * 1024 * 1024))
    archive_file = ArchiveFile(
        path=path, partition=0, first_offset=0, last_offset=9, records=10,
        first_timestamp_ms=1, last_timestamp_ms=2, min_timestamp_ms=1, max_timestamp_ms=2,
        size=path.stat().st_size, sha256=file_sha256(path), raw_bytes=1,
    )  # fmt: skip
    s3 = BackupS3Hook(aws_conn_id="aws_unit")

    def upload() -> dict[str, Any]:
        return upload_archive_file(
            s3, archive_file, topic="events", bucket="archive", prefix="kafka/", encryption=Encryption(),
            storage_class="GLACIER", object_lock=None, now=datetime.now(UTC), part_size=5 * 1024 * 1024,
        )  # fmt: skip

    entry = upload()
    head = moto_s3.head_object(Bucket="archive", Key=entry["key"], ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"') and entry["sha256"] == archive_file.sha256

    # The file S3 holds no longer matches what was written (as if a part were corrupted).
    real = kafka_archive.composite_sha256_of_file
    monkeypatch.setattr(kafka_archive, "composite_sha256_of_file", lambda *a, **k: "X" + real(*a, **k)[1:])
    with pytest.raises(ChecksumMismatchError, match="composite SHA-256 .* written in 5242880-byte parts"):
        upload()
