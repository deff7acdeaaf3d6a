"""Only one recovery-point folder at a time can ever be deleted."""

from __future__ import annotations

from unittest import mock

import pytest

from backup_pipelines.clickhouse.backups import BackupStore
from backup_pipelines.core.errors import UnsafeOperationError


@pytest.mark.parametrize(
    "location",
    [
        "s3://b/clickhouse/",  # the whole prefix
        "s3://b/clickhouse/analytics/",  # a whole dataset
        "s3://b/catalog/clickhouse_snapshot/",  # not a backup folder at all
        "s3://b/clickhouse/analytics/20261123T1400Z",  # no trailing slash: a key prefix, not a folder
    ],
)
def test_delete_location_refuses_anything_but_one_recovery_point_folder(location: str) -> None:
    s3 = mock.Mock()
    with pytest.raises(UnsafeOperationError, match="not a recovery point folder"):
        BackupStore(s3).delete_location(location)
    s3.delete_keys.assert_not_called()


@pytest.mark.parametrize("folder", ["20261123T1400Z", "20261123T1400Z.retake-20261123T151502"])
def test_delete_location_accepts_slot_and_retake_folders(folder: str) -> None:
    s3 = mock.Mock()
    s3.iter_objects.return_value = [mock.Mock(key="k")]
    assert BackupStore(s3).delete_location(f"s3://b/clickhouse/analytics/{folder}/") == 1
    s3.delete_keys.assert_called_once_with("b", ["k"])
