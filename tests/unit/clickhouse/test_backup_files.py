"""The recovery point id of a slot and the ``.backup`` listing ClickHouse writes."""

from __future__ import annotations

from datetime import UTC, datetime

from backup_pipelines.clickhouse.backup_files import parse_backup_metadata, recovery_point_id


def test_recovery_point_id_comes_from_the_interval_end() -> None:
    assert recovery_point_id(datetime(2026, 11, 23, 14, tzinfo=UTC)) == "20261123T1400Z"


BACKUP_XML = """<config><version>1</version><timestamp>2026-11-23 14:00:05</timestamp>
<uuid>5f1c0a4e-1111-4222-8333-944455556666</uuid>
<base_backup>S3('http://s3/b/ds/20261123T1300Z/')</base_backup>
<base_backup_uuid>0a1b2c3d-0000-4000-8000-000000000001</base_backup_uuid><contents>
<file><name>data/db/t/all_1_1_0/count.txt</name><size>4</size><checksum>aa</checksum><use_base>true</use_base></file>
<file><name>data/db/t/all_2_2_0/count.txt</name><size>3</size><checksum>bb</checksum></file>
<file><name>data/db/t/all_2_2_0/data.bin</name><size>2095</size><checksum>cc</checksum></file>
<file><name>metadata/db/t.sql</name><size>150</size><checksum>dd</checksum><use_base>true</use_base></file>
<file><name>shards/1/replicas/1/data/db/u%2Dx/all_0_0_0/count.txt</name><size>2</size><checksum>ee</checksum></file>
<file><name>metadata/db/u%2Dx.sql</name><size>10</size><checksum>ff</checksum></file>
</contents></config>"""


def test_backup_metadata_lists_parts_tables_and_what_lives_in_the_base() -> None:
    contents = parse_backup_metadata(BACKUP_XML)
    assert contents.base_backup == "S3('http://s3/b/ds/20261123T1300Z/')"
    assert contents.tables() == ["t", "u-x"]
    parts = contents.part_count_files()
    assert sorted(parts) == [("t", "all_1_1_0"), ("t", "all_2_2_0"), ("u-x", "all_0_0_0")]
    by_name = {f.name: f for f in contents.files}
    assert not by_name["data/db/t/all_1_1_0/count.txt"].stored_here
    assert by_name["data/db/t/all_2_2_0/data.bin"].stored_here
    assert (contents.uuid, contents.base_backup_uuid) == (
        "5f1c0a4e-1111-4222-8333-944455556666",
        "0a1b2c3d-0000-4000-8000-000000000001",
    )
    metadata = contents.table_metadata()
    assert not metadata["t"].stored_here and metadata["u-x"].stored_here  # t's statement is the base's


def test_each_file_entry_reads_every_field_clickhouse_may_write() -> None:
    contents = parse_backup_metadata(
        "<config><contents>"
        "<file><name>data/db/t/p/a.bin</name><size>10</size><checksum></checksum><use_base>true</use_base>"
        "<base_size>4</base_size><data_file>data/db/t/p/b.bin</data_file></file>"
        "<file><name>data/db/t/p/c.bin</name><size>7</size><checksum>c1</checksum><use_base>false</use_base></file>"
        "<file><name>data/db/t/p/d.bin</name><size>0</size></file>"
        "</contents></config>"
    )
    a, c, d = contents.files
    assert (a.checksum, a.use_base, a.base_size, a.data_file, a.stored_here) == (
        "",
        True,
        4,
        "data/db/t/p/b.bin",
        True,
    )
    assert (c.checksum, c.use_base, c.base_size, c.stored_here) == ("c1", False, 7, True)
    assert (d.size, d.checksum, d.use_base, d.base_size, d.stored_here) == (0, None, False, 0, False)
    assert contents.tables() == [] and contents.part_count_files() == {}
