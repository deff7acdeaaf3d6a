"""Building this package's S3 clients: one data loader per process, no walk of the call stack."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from backup_pipelines.core.boto_loader import shared_data_loader
from backup_pipelines.core.s3 import BackupS3Hook

UNIT_AWS_CONN_ID = "aws_unit"  # the moto_s3 fixture's connection


def test_the_user_agent_names_this_package_without_walking_the_stack(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked: list[bool] = []

    def stack(*_: Any, **__: Any) -> Any:
        walked.append(True)
        raise AssertionError("inspect.stack() walked")

    monkeypatch.setattr(inspect, "stack", stack)
    client = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID).client

    assert "Caller/backup_pipelines" in client.meta.config.user_agent_extra
    assert walked == []


def test_every_client_shares_the_process_data_loader(moto_s3: Any) -> None:
    first, second = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID), BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
    loaders = [hook.get_session()._session.get_component("data_loader") for hook in (first, second)]
    assert loaders[0] is loaders[1] is shared_data_loader()


def test_listed_timestamps_are_read_without_dateutil_and_equal_botocores(moto_s3: Any) -> None:
    """S3's ISO 8601 timestamps are parsed by ``datetime.fromisoformat`` (UTC as ``datetime.UTC``;
    botocore's dateutil parser gives ``tzutc()``); an HTTP date or epoch still goes to botocore's
    parser; both give the same instant."""
    from datetime import UTC

    from botocore import utils

    from backup_pipelines.core.boto_loader import parse_timestamp

    hook = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
    hook.client.create_bucket(Bucket="ts-bucket")
    hook.client.put_object(Bucket="ts-bucket", Key="k", Body=b"x")
    expected = hook.client.head_object(Bucket="ts-bucket", Key="k")["LastModified"]  # an HTTP date

    [listed] = list(hook.iter_objects("ts-bucket", ""))

    assert listed.last_modified == expected
    assert listed.last_modified is not None and listed.last_modified.tzinfo is UTC, "parsed without dateutil"
    for value in (
        "2026-11-29T13:21:29.000Z",
        "Sun, 29 Nov 2026 13:21:29 GMT",
        1764422489,
        "2026-11-29T13:21:29",
    ):
        assert parse_timestamp(value) == utils.parse_timestamp(value), value


_NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
_OBJECTS = (
    "<Contents><Key>a/1.bin</Key><LastModified>2026-11-29T13:21:29.000Z</LastModified>"
    "<ETag>&quot;0c1d&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
    "<ChecksumAlgorithm>SHA256</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>"
    "<Size>10</Size><Owner><ID>o</ID><DisplayName>n</DisplayName></Owner>"
    "<StorageClass>GLACIER</StorageClass><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress>"
    "<RestoreExpiryDate>2026-12-01T00:00:00.000Z</RestoreExpiryDate></RestoreStatus><Unknown>x</Unknown>"
    "</Contents>"
    "<Contents><Key>a/%C3%A9+2</Key><LastModified>2026-11-29T13:21:29Z</LastModified><ETag/>"
    "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><Size>0</Size></Contents>"
    "<Contents><Key>a/&lt;3&gt;</Key><Size>18446744073709551615</Size></Contents>"
)


@pytest.mark.parametrize(
    ("namespace", "objects", "extra"),
    [
        (
            _NS,
            _OBJECTS,
            "<CommonPrefixes><Prefix>a/b/</Prefix></CommonPrefixes><EncodingType>url</EncodingType>",
        ),
        ("", _OBJECTS, "<NextContinuationToken>t</NextContinuationToken>"),
        (_NS, "", ""),
    ],
    ids=["every-member", "no-namespace", "empty"],
)
def test_a_listing_parses_to_exactly_what_botocore_gives(namespace: str, objects: str, extra: str) -> None:
    """The direct path for listed objects returns botocore's own dict for the same response."""
    import botocore.session
    from botocore.parsers import RestXMLParser

    from backup_pipelines.core.boto_loader import ListingParser, parse_timestamp, response_parsers

    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult{namespace}><Name>b</Name>'
        f"<Prefix>a/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
        f"{objects}{extra}</ListBucketResult>"
    ).encode()
    response = {"body": body, "headers": {"x-amz-request-id": "r"}, "status_code": 200}
    shape = (
        botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape
    )
    parser = response_parsers().create_parser("rest-xml")
    assert isinstance(parser, ListingParser)

    ours = parser.parse(response, shape)

    assert ours == RestXMLParser(timestamp_parser=parse_timestamp).parse(response, shape)
    if objects:
        assert ours["Contents"][0]["ChecksumAlgorithm"] == ["CRC32", "SHA256"]
        assert ours["Contents"][1]["ChecksumAlgorithm"] == ["CRC64NVME"], "one element is still a list"
        assert ours["Contents"][1]["ETag"] == "" and ours["Contents"][2]["Key"] == "a/<3>"


def test_this_package_s_clients_list_with_the_listing_parser_and_see_what_a_plain_client_sees(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from backup_pipelines.core.boto_loader import ListingParser

    planned: list[str] = []
    plan = ListingParser._plan
    monkeypatch.setattr(
        ListingParser, "_plan", lambda self, shape: planned.append(shape.name) or plan(self, shape)
    )
    hook = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
    hook.client.create_bucket(Bucket="parse-bucket")
    for key, cls in [("d/x y", "STANDARD"), ("d/é", "GLACIER"), ("d/empty", "STANDARD_IA")]:
        hook.client.put_object(Bucket="parse-bucket", Key=key, Body=key.encode(), StorageClass=cls)
    plain = boto3.client("s3", region_name="us-east-1")

    ours, theirs = (
        {
            k: v
            for k, v in client.list_objects_v2(Bucket="parse-bucket", Prefix="d/").items()
            if k != "ResponseMetadata"
        }
        for client in (hook.client, plain)
    )

    assert planned == ["Object"] * 3, "each listed object read by the direct path"
    assert ours == theirs and [o["Key"] for o in ours["Contents"]] == ["d/empty", "d/x y", "d/é"]


def test_listing_plans_live_only_as_long_as_their_clients(moto_s3: Any) -> None:
    """Each client has shapes of its own: a process building clients all day (a triggerer, the
    Backups page) must not keep a plan per client it ever built."""
    import gc

    from backup_pipelines.core.boto_loader import ListingParser

    hook = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
    hook.client.create_bucket(Bucket="plans-bucket")
    hook.client.put_object(Bucket="plans-bucket", Key="k", Body=b"x")
    for _ in range(6):
        other = BackupS3Hook(aws_conn_id=UNIT_AWS_CONN_ID)
        assert [o.key for o in other.iter_objects("plans-bucket", "")] == ["k"]
        del other
    gc.collect()

    assert len(ListingParser._plans) <= 1
