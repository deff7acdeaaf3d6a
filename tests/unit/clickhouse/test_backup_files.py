"""The recovery point id of a slot and the ``.backup`` listing ClickHouse writes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

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


_ENTRY = "<file><name>data/db/t/p/count.txt</name><size>2</size><checksum>a1</checksum></file>"
_ESCAPED = (
    "<file><name>data/db/a%26b/&amp;&lt;p&gt;/count.txt</name><size>1</size><checksum>b2</checksum></file>"
)
_ALL_FIELDS = (
    "<file><name>data/db/t/q/a.bin</name><size>10</size><checksum>c3</checksum><use_base>true</use_base>"
    "<base_size>4</base_size><base_checksum>d4</base_checksum><data_file>data/db/t/q/b.bin</data_file>"
    "<encrypted_by_disk>false</encrypted_by_disk></file>"
)


def _backup(*entries: str, header: str = "<uuid>u</uuid><base_backup>S3(&apos;x&apos;)</base_backup>") -> str:
    return f"<config><version>1</version>{header}<contents>{''.join(entries)}</contents></config>"


@pytest.mark.parametrize(
    ("raw", "fixed_form"),
    [
        (BACKUP_XML, False),  # line breaks between the entries: not ClickHouse's form
        (_backup(_ENTRY, _ESCAPED, _ALL_FIELDS), True),
        (_backup(_ENTRY, _ALL_FIELDS).encode(), True),
        (_backup(), True),
        (_backup(_ENTRY, _ENTRY.replace("</size>", "</size><future_field>1</future_field>")), False),
        (_backup(_ENTRY.replace("<file>", '<file id="1">')), False),
        (_backup(_ENTRY.replace("<checksum>a1</checksum>", "<checksum/>")), False),
        (_backup(_ENTRY.replace("<size>", "\n  <size>")), False),
        (_backup(_ENTRY, header="<uuid><![CDATA[u]]></uuid>"), False),
        (_backup(_ENTRY).replace("<contents>", "<contents><!-- note -->"), False),
        ("<?xml version='1.0'?>" + _backup(_ENTRY), False),
        (_backup(_ENTRY.replace("a1", "&#128;&#x41;")), False),
        (_backup(_ENTRY.replace("count.txt", "c&quot;o&apos;unt.txt")), True),
        (_backup(_ENTRY, "<x>y</x>", _ENTRY), False),
        (_backup(_ENTRY, header="<uuid>u</uuid><uuid>v</uuid><base_backup>b</base_backup>"), True),
        (_backup(_ENTRY, header=f"<uuid>u</uuid>{_ESCAPED}"), False),
        (_backup(_ENTRY, header="<meta><uuid>nested</uuid></meta>"), True),
        (_backup(_ENTRY.replace("count.txt", "c\r\nount.txt")), False),
    ],
    ids=[
        "sample",
        "escapes",
        "bytes",
        "empty",
        "new-field",
        "attribute",
        "self-closing",
        "whitespace",
        "cdata",
        "comment",
        "declaration",
        "character-references",
        "quote-entities",
        "stray-element",
        "duplicate-header-field",
        "file-in-header",
        "nested-header-field",
        "carriage-return",
    ],
)
def test_the_fixed_form_reads_what_the_element_tree_reads_and_anything_else_goes_to_it(
    raw: str | bytes, fixed_form: bool
) -> None:
    """ClickHouse's own form is read by one regular expression; whatever it is, the contents are
    those the element tree reads (every field of every entry, the header's UUIDs and base)."""
    from backup_pipelines.clickhouse.backup_files import _parse, _parse_fixed_form

    contents = parse_backup_metadata(raw)

    assert contents == _parse(raw)
    assert (_parse_fixed_form(raw) is not None) is fixed_form
    if raw == _backup(_ENTRY, _ESCAPED, _ALL_FIELDS):
        assert contents.files[1].name == "data/db/a%26b/&<p>/count.txt"
        assert contents.base_backup == "S3('x')"


@pytest.mark.parametrize(
    "raw",
    [
        _backup(_ENTRY)[:-9],
        _backup(_ENTRY).replace("</name>", "</nam>"),
        _backup(_ENTRY).encode()[:-1] + b"\xff",
        _backup(_ENTRY.replace("count.txt", "a&b")),
        _backup(_ENTRY.replace("count.txt", "a&nbsp;b")),
        _backup(_ENTRY, "<x>", _ENTRY),
    ],
    ids=[
        "truncated",
        "mismatched-tag",
        "not-utf8",
        "bare-ampersand",
        "html-entity",
        "unclosed-stray-element",
    ],
)
def test_a_listing_that_is_not_well_formed_xml_is_refused(raw: str | bytes) -> None:
    with pytest.raises(ET.ParseError):
        parse_backup_metadata(raw)
