"""An EMR point of odd keys, archived to GLACIER, through the DR drill's restore check and the
recovery runbook's own code (docs/runbooks/emr-output-recovery.md, every block run as written)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from support.emr import odd_day, seed
from support.paths import ROOT

pytestmark = pytest.mark.integration

SOURCE = "emr-output-int"
JOB, DAY = "recovery", "2026-05-05"
PREFIX, DEST = f"{JOB}/dt={DAY}/", f"emr/{JOB}/dt={DAY}/"
RUNBOOK = ROOT / "docs" / "runbooks" / "emr-output-recovery.md"


@pytest.fixture
def archived(
    embedded_stack: Any, s3: Any, example_config: dict[str, Any], write_config: Any
) -> dict[str, bytes]:
    """The day archived to GLACIER (so the drill and the runbook must restore before reading)."""
    from backup_pipelines.core.config import load_config
    from backup_pipelines.emr.archive import EmrArchiveService

    embedded_stack.create_buckets(SOURCE)
    example_config["emr_archive"]["storage_class"] = "GLACIER"
    example_config["emr_archive"]["jobs"] = [{"name": JOB, "source": f"s3://{SOURCE}/{JOB}/dt={{{{ ds }}}}/"}]
    example_config["clickhouse_snapshots"]["datasets"] = []
    example_config["kafka_archive"]["topics"] = []
    example_config["deep_archive_exports"]["exports"] = []
    example_config["dr_drill"]["sample_objects"] = 100
    write_config(example_config)
    objects = odd_day(DEST, regular=3)
    seed(s3, SOURCE, PREFIX, objects)
    summary = EmrArchiveService.from_config(load_config()).archive(
        JOB, day=DAY, source_url=f"s3://{SOURCE}/{PREFIX}", interval=(None, None), run_id="test__recovery"
    )
    assert summary.objects == len(objects)
    return objects


def _drill() -> Any:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.drill.archives import ArchiveDrill
    from backup_pipelines.drill.params import DrillParams
    from backup_pipelines.drill.plan import plan_drill

    cfg = load_config()
    now = datetime.now(UTC)
    plan = plan_drill(
        cfg, Catalog.from_config(cfg), DrillParams(pick="latest"), run_id="manual__odd", now=now, due=now
    )
    entry = plan.entry("emr_output", JOB)
    drill = ArchiveDrill.from_config(cfg, plan)
    assert drill.request_thaws(entry) == {}  # moto thaws at once
    return entry, drill.verify(entry, started=0.0, thaw_error=None)


def test_the_drill_restores_and_checks_every_odd_key(archived: dict[str, bytes], s3: Any) -> None:
    entry, result = _drill()
    assert sorted(entry.sample) == sorted(DEST + name for name in archived)
    sha_checks = [c for c in result.checks if c.name == "archive.sha256"]
    assert len(sha_checks) == len(archived) and all(c.ok for c in result.checks), result.failures()

    # The check is real: a corrupted copy of the non-ASCII object fails, named.
    bad = DEST + "日本語/売上 データ.parquet"
    s3.restore_object(Bucket="analytics-archive", Key=bad, RestoreRequest={"Days": 1})
    s3.copy_object(
        Bucket="analytics-archive", Key=bad, CopySource={"Bucket": SOURCE, "Key": PREFIX + "empty.parquet"}
    )
    _, result = _drill()
    failed = [c for c in result.checks if not c.ok]
    assert {c.object for c in failed} == {f"s3://analytics-archive/{bad}"}
    # Found twice: by the listing (its size) and by the bytes read (its SHA-256).
    assert {c.name for c in failed} == {"objects_present", "archive.sha256"}


def test_the_runbook_restores_the_day_byte_for_byte(archived: dict[str, bytes], s3: Any, capsys: Any) -> None:
    for name in archived:  # the day is lost at the source
        s3.delete_object(Bucket=SOURCE, Key=PREFIX + name)
    text = RUNBOOK.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 4, "the runbook's steps 1-4 are its python blocks"
    first, n = re.subn(r'JOB, DAY = "[^"]*", "[^"]*"', f'JOB, DAY = "{JOB}", "{DAY}"', blocks[0])
    first, m = re.subn(r'TARGET = "[^"]*"', f'TARGET = "s3://{SOURCE}/{PREFIX}"', first)
    assert (n, m) == (1, 1), "step 1 sets JOB, DAY and TARGET"
    namespace: dict[str, Any] = {}
    for block in [first, *blocks[1:]]:
        exec(compile(block, str(RUNBOOK), "exec"), namespace)  # the runbook's own code

    out = capsys.readouterr().out
    assert f"restored and verified {len(archived)} object(s) to s3://{SOURCE}/{PREFIX}" in out
    assert "0 object(s) still being restored" in out
    for name, body in archived.items():
        assert s3.get_object(Bucket=SOURCE, Key=PREFIX + name)["Body"].read() == body, name
