"""The ``ingest`` config of a ClickHouse dataset: defaults, and bad values named in one line."""

from __future__ import annotations

from typing import Any

import pytest

from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import ConfigError


def _with_ingest(example_config: dict[str, Any], ingest: dict[str, Any]) -> dict[str, Any]:
    example_config["clickhouse_snapshots"]["datasets"][0]["ingest"] = ingest
    return example_config


def test_ingest_defaults_to_a_group_reset_and_the_replay_suffix(
    write_config: Any, example_config: dict[str, Any]
) -> None:
    write_config(_with_ingest(example_config, {"topics": ["events"], "consumer_groups": ["ch-ingest"]}))
    ingest = load_config().clickhouse_snapshots.datasets[0].ingest
    assert ingest is not None
    assert (ingest.replay, ingest.replay_topic_suffix, ingest.tables) == ("reset_group", ".replay", [])


@pytest.mark.parametrize(
    ("ingest", "named"),
    [
        ({"topics": [], "consumer_groups": ["g"]}, "ingest.topics"),
        ({"topics": ["events"]}, "ingest.consumer_groups"),
        ({"topics": ["events"], "consumer_groups": ["g"], "replay": "rewind"}, "ingest.replay"),
        (
            {"topics": ["events"], "consumer_groups": ["g"], "replay_topic_suffix": "/x"},
            "replay_topic_suffix",
        ),
        ({"topics": ["events"], "consumer_groups": ["g"], "group": "g"}, "ingest: unknown key 'group'"),
    ],
)
def test_a_bad_ingest_value_is_refused_naming_the_field(
    write_config: Any, example_config: dict[str, Any], ingest: dict[str, Any], named: str
) -> None:
    write_config(_with_ingest(example_config, ingest))
    with pytest.raises(ConfigError) as info:
        load_config()
    assert named in str(info.value)
    assert "\n" not in str(info.value)
