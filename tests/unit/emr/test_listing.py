"""What a re-run does with each object: the two listings walked together and the previous manifest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.core.s3 import S3Object
from backup_pipelines.emr.listing import Pair, PreviousArchive, pair_listings

SRC, DEST = "job/dt=2026-01-01/", "emr/job/dt=2026-01-01/"


def _src(rel: str, etag: str = "e1", size: int = 10) -> S3Object:
    return S3Object("out", SRC + rel, size, f'"{etag}"')


def _dest(rel: str, etag: str = "e1", size: int = 10) -> S3Object:
    return S3Object("archive", DEST + rel, size, f'"{etag}"')


def _manifest(
    *entries: tuple[str, str], state: str = "verified", source_etags: dict | None = None
) -> Manifest:
    return Manifest(
        kind="emr_output",
        dataset="job",
        recovery_point_id="dt=2026-01-01",
        captured_at=datetime(2026, 1, 2, tzinfo=UTC),
        location=f"s3://archive/{DEST}",
        storage_class="STANDARD",
        objects=[ObjectEntry(key=DEST + rel, size=10, sha256="ab" * 32, etag=etag) for rel, etag in entries],
        verification=Verification(state=state),  # type: ignore[arg-type]
        details={"source_etags": source_etags or {}},
    )


def test_listings_are_walked_together_by_relative_key_in_s3_order() -> None:
    # S3 lists in UTF-8 byte order: "Z" < "a" < "é" < "日"; the two prefixes differ in length.
    sources = [_src("Z"), _src("a/b"), _src("é"), _src("日本")]
    archived = [_dest("0-stray"), _dest("a/b"), _dest("日本"), _dest("💥")]
    pairs = [
        (p.rel, p.source is not None, p.archived is not None)
        for p in pair_listings(sources, SRC, archived, DEST)
    ]
    assert pairs == [
        ("0-stray", False, True),
        ("Z", True, False),
        ("a/b", True, True),
        ("é", True, False),
        ("日本", True, True),
        ("💥", False, True),
    ]


@pytest.mark.parametrize(
    ("rel", "source", "archived", "action"),
    [
        ("a", _src("a"), _dest("a"), "keep"),  # same source version, copy intact
        ("a", _src("a", etag="e2"), _dest("a"), "copy"),  # the source changed
        ("a", _src("a", size=11), _dest("a"), "copy"),
        ("a", _src("a"), None, "copy"),  # the archived copy is gone
        ("a", _src("a"), _dest("a", etag="bad"), "copy"),  # the archived copy was overwritten
        ("new", _src("new"), None, "copy"),  # not archived before
        ("a", None, _dest("a"), "carry"),  # the source is gone, its copy is intact
        ("a", None, _dest("a", etag="bad"), "lost"),  # gone at both ends
        ("a", None, None, "lost"),
        ("stray", None, _dest("stray"), "ignore"),  # an archive object no manifest lists
    ],
)
def test_each_object_of_a_rerun_is_kept_copied_carried_or_lost(
    rel: str, source: S3Object | None, archived: S3Object | None, action: str
) -> None:
    previous = PreviousArchive(_manifest(("a", "e1")), DEST)
    assert previous.decide(Pair(rel, source, archived)) == action


def test_a_failed_or_missing_previous_point_copies_everything() -> None:
    for previous in (
        PreviousArchive(_manifest(("a", "e1"), state="failed"), DEST),
        PreviousArchive(None, DEST),
    ):
        (pair,) = pair_listings([_src("a")], SRC, [_dest("a")], DEST)
        assert previous.decide(pair) == "copy"


def test_a_kms_copy_is_matched_with_the_source_etag_the_manifest_recorded() -> None:
    # With SSE-KMS the copy's ETag is not the source's: the manifest records the source's.
    previous = PreviousArchive(_manifest(("a", "kms-etag"), source_etags={"a": "e1"}), DEST)
    (same,) = pair_listings([_src("a", etag="e1")], SRC, [_dest("a", etag="kms-etag")], DEST)
    (changed,) = pair_listings([_src("a", etag="e2")], SRC, [_dest("a", etag="kms-etag")], DEST)
    assert (previous.decide(same), previous.decide(changed)) == ("keep", "copy")
