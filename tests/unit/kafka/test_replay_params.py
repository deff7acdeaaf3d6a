"""kafka_archive_replay's params: each bad one fails the plan, before anything is read, restored,
created or produced, with one line naming it. (The DAG run: tests/e2e/kafka/test_dags.py.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from support.kafka import archive_manifest

from backup_pipelines.core.errors import ParamError, RecoveryPointNotFoundError, UnsafeOperationError
from backup_pipelines.core.manifest import Listing, ObjectEntry, OffsetRange
from backup_pipelines.kafka.params import ReplayParams
from backup_pipelines.kafka.replay import plan_replay


def _params(**values: Any) -> ReplayParams:
    return ReplayParams.from_context({"dag_run": SimpleNamespace(conf=values), "params": values})


def _plan(example_config: dict[str, Any], **values: Any) -> Any:
    from backup_pipelines.core.config import BackupConfig

    raw = dict(example_config)
    raw["kafka_archive"] = {**raw["kafka_archive"], "topics": [{"name": "events"}, {"name": "payments"}]}
    cfg = BackupConfig.model_validate(raw)
    point = archive_manifest(
        offsets=[OffsetRange(topic="events", partition=p, start_offset=0, end_offset=100) for p in (0, 1)],
        objects=[
            ObjectEntry(
                key=f"kafka/events/partition={p}/0-99.parquet", size=10, partition=p, first_offset=0,
                last_offset=99, records=100, first_timestamp="2026-11-10T00:00:00+00:00",
                last_timestamp="2026-11-15T00:00:00+00:00",
            )
            for p in (0, 1)
        ],
    )  # fmt: skip
    catalog = SimpleNamespace(
        list_points=lambda kind, topic: Listing(points=[point] if topic == "events" else [])
    )
    return plan_replay(cfg, catalog, _params(**values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"start_time": "2026-11-12T00:00:00Z", "end_time": "2026-11-11T00:00:00Z"},
            "param end_time: 2026-11-11T00:00:00+00:00 is not after start_time 2026-11-12T00:00:00+00:00",
        ),
        (
            {"start_time": "2026-11-12T00:00:00Z", "end_time": "2026-11-12T00:00:00Z"},
            "param end_time: 2026-11-12T00:00:00+00:00 is not after start_time",
        ),
        ({"start_offset": 50, "end_offset": 10}, "param end_offset: 10 is not after start_offset 50"),
        ({"start_offset": -1}, "param start_offset: Input should be greater than or equal to 0"),
        ({"end_offset": -5}, "param end_offset: Input should be greater than or equal to 0"),
        ({"start_offset": "ten"}, "param start_offset: Input should be a valid integer"),
        (
            {"target_topic": "events replay/2"},
            "param target_topic: 'events replay/2' is not a legal Kafka topic name",
        ),
        ({"target_topic": "x" * 250}, f"param target_topic: {'x' * 250!r} is not a legal Kafka topic name"),
        ({"target_topic": ".."}, "param target_topic: '..' is not a legal Kafka topic name"),
        ({"dry_run": "maybe"}, "param dry_run: Input should be a valid boolean"),
        ({"confirm_same_topic": "perhaps"}, "param confirm_same_topic: Input should be a valid boolean"),
        ({"end_time": "last tuesday"}, "param end_time: 'last tuesday' is not an ISO 8601 time"),
        ({"partitions": "0,x"}, "param partitions: '0,x' is not a comma-separated list of partition ids"),
        ({"partitions": [-2]}, "param partitions: [-2] has a negative partition id"),
        ({"max_messages": 0}, "param max_messages: Input should be greater than or equal to 1"),
        ({"restore_tier": "Fast"}, "param restore_tier: Input should be 'Expedited', 'Standard' or 'Bulk'"),
        ({"restore_days": 0}, "param restore_days: Input should be greater than or equal to 1"),
        ({"end_tme": "2026-11-12T00:00:00Z"}, "unknown param(s) 'end_tme'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_param(
    example_config: dict[str, Any], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParamError) as failure:
        _plan(example_config, topic="events", **values)
    assert str(failure.value).startswith(message), str(failure.value)


def test_a_topic_that_is_not_configured_is_refused_with_the_closest_configured_name(
    example_config: dict[str, Any],
) -> None:
    with pytest.raises(ParamError) as failure:
        _plan(example_config, topic="evnets")
    assert str(failure.value) == (
        "param topic: 'evnets' is not a configured archive topic "
        "(kafka_archive.topics: events, payments; closest: events)"
    )


def test_partitions_the_archive_does_not_have_are_refused(example_config: dict[str, Any]) -> None:
    with pytest.raises(ParamError) as failure:
        _plan(example_config, topic="events", partitions="1,7,9")
    assert (
        str(failure.value)
        == "param partitions: 7, 9 not in the archive of 'events' (archived partitions: 0, 1)"
    )


def test_a_target_another_configured_archive_reads_is_refused_unless_confirmed(
    example_config: dict[str, Any],
) -> None:
    with pytest.raises(UnsafeOperationError) as failure:
        _plan(example_config, topic="events", target_topic="payments")
    assert str(failure.value).startswith(
        "target_topic 'payments' is the live topic of another archived dataset (kafka_archive/payments)"
    )
    with pytest.raises(UnsafeOperationError, match="is the source topic"):
        _plan(example_config, topic="events", target_topic="events")
    plan = _plan(example_config, topic="events", target_topic="payments", confirm_same_topic=True)
    assert plan.target_topic == "payments" and len(plan.files) == 2
    assert _plan(example_config, topic="events").target_topic == "events.replay"


def test_a_range_no_archived_file_holds_is_refused(example_config: dict[str, Any]) -> None:
    with pytest.raises(RecoveryPointNotFoundError, match="no archived file of topic 'events' holds records"):
        _plan(example_config, topic="events", start_offset=500)
    with pytest.raises(RecoveryPointNotFoundError, match="topic 'payments' has no archive in the catalog"):
        _plan(example_config, topic="payments")
