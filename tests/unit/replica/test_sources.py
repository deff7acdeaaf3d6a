"""``source: primary | dr`` on the restore, replay and drill forms: read before any side effect."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from support.kafka import archive_manifest

from backup_pipelines.core.errors import ParamError
from backup_pipelines.core.manifest import Listing, ObjectEntry, OffsetRange


def _context(**values: Any) -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(conf=values), "params": values}


def test_a_replay_from_dr_reads_the_dr_archive_bucket(example_config: dict[str, Any]) -> None:
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.kafka.params import ReplayParams
    from backup_pipelines.kafka.replay import plan_replay

    cfg = BackupConfig.model_validate(example_config)
    point = archive_manifest(
        offsets=[OffsetRange(topic="events", partition=0, start_offset=0, end_offset=10)],
        objects=[ObjectEntry(key="kafka/events/partition=0/0-9.parquet", size=10, partition=0,
                             first_offset=0, last_offset=9, records=10)],
    )  # fmt: skip
    catalog = SimpleNamespace(list_points=lambda kind, topic: Listing(points=[point]))
    for source, bucket in (("primary", "analytics-archive"), ("dr", "analytics-archive-dr")):
        params = ReplayParams.from_context(_context(topic="events", source=source))
        plan = plan_replay(cfg, catalog, params)  # type: ignore[arg-type]
        assert (plan.source, plan.bucket) == (source, bucket)


@pytest.mark.parametrize("module", ["clickhouse", "kafka", "drill"])
def test_an_unknown_source_is_refused_naming_the_param(module: str) -> None:
    from backup_pipelines.clickhouse.params import RestoreParams
    from backup_pipelines.drill.params import DrillParams
    from backup_pipelines.kafka.params import ReplayParams

    model = {"clickhouse": RestoreParams, "kafka": ReplayParams, "drill": DrillParams}[module]
    with pytest.raises(ParamError, match="param source: Input should be 'primary' or 'dr'"):
        model.from_context(_context(source="west"))
    assert model.from_context(_context()).source == "primary"
