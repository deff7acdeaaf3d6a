"""The config: what a user sees when the YAML is right, and the one-line error when it is not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backup_pipelines.core.config import load_config, parse_duration
from backup_pipelines.core.errors import ConfigError


def test_example_config_loads_with_every_section() -> None:
    cfg = load_config()
    assert cfg.storage.backup_bucket == "analytics-backups"
    assert cfg.clickhouse_snapshots.datasets[0].objectives.rpo == timedelta(hours=1)
    kinds = {kind for kind, _, _ in cfg.datasets()}
    assert kinds == {"clickhouse_snapshot", "emr_output", "kafka_archive", "deep_archive_export"}


def test_env_var_selects_the_file(write_config, example_config) -> None:
    example_config["storage"]["backup_bucket"] = "other-backups"
    write_config(example_config)
    assert load_config().storage.backup_bucket == "other-backups"


def test_misspelled_key_names_file_field_and_allowed_keys(write_config, example_config) -> None:
    example_config["clickhouse_snapshots"]["retention_dayz"] = 3
    path = write_config(example_config)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert "clickhouse_snapshots: unknown key 'retention_dayz'" in message
    assert "retention_days" in message  # the allowed keys are listed


def test_invalid_storage_class_names_field_and_allowed_values(write_config, example_config) -> None:
    example_config["kafka_archive"]["storage_class"] = "GLACER"
    write_config(example_config)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert "kafka_archive.storage_class: 'GLACER' is not allowed" in message
    assert "'DEEP_ARCHIVE'" in message


def test_nested_list_field_is_named_with_its_index(write_config, example_config) -> None:
    example_config["emr_archive"]["jobs"][1]["source"] = "emr-output/no-scheme/"
    write_config(example_config)
    with pytest.raises(
        ConfigError, match=r"emr_archive\.jobs\[1\]\.source: 'emr-output/no-scheme/' is not an s3://"
    ):
        load_config()


def test_kms_mode_needs_a_key(write_config, example_config) -> None:
    example_config["storage"]["encryption"] = {"mode": "SSE-KMS"}
    write_config(example_config)
    with pytest.raises(ConfigError, match="storage.encryption: mode SSE-KMS needs kms_key_id"):
        load_config()


def test_missing_sql_file_is_named(write_config, example_config) -> None:
    example_config["deep_archive_exports"]["exports"][0]["sql"] = "exports/nope.sql"
    write_config(example_config)
    with pytest.raises(ConfigError, match=r"include/sql/exports/nope.sql does not exist"):
        load_config()


def test_duplicate_dataset_names_rejected(write_config, example_config) -> None:
    example_config["kafka_archive"]["topics"].append({"name": "events"})
    write_config(example_config)
    with pytest.raises(ConfigError, match="kafka_archive.topics: duplicate name"):
        load_config()


def test_missing_required_section(write_config, example_config) -> None:
    del example_config["alerts"]
    write_config(example_config)
    with pytest.raises(ConfigError, match="alerts: required key is missing"):
        load_config()


def test_unreadable_and_non_yaml_files(write_config, tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.yaml")
    write_config("storage: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config()
    write_config("- a list")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config()


def test_retries_below_two_rejected(write_config, example_config) -> None:
    example_config["defaults"]["retries"] = 1
    write_config(example_config)
    with pytest.raises(ConfigError, match="defaults.retries"):
        load_config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_bad_duration_says_what_is_allowed(write_config, example_config) -> None:
    example_config["clickhouse_snapshots"]["full_every"] = "daily"
    write_config(example_config)
    with pytest.raises(
        ConfigError, match=r"clickhouse_snapshots.full_every: 'daily' is not a duration; use .*1h"
    ):
        load_config()


def test_config_is_reloaded_when_the_file_changes(write_config, example_config) -> None:
    write_config(example_config)
    assert load_config().rpo_monitor.status_key == "status/rpo.json"
    example_config["rpo_monitor"]["status_key"] = "status/other.json"
    path = write_config(example_config)
    import os

    os.utime(path, ns=(1, 10**18))
    assert load_config().rpo_monitor.status_key == "status/other.json"


@pytest.mark.parametrize(
    ("section", "key", "value", "other"),
    [
        ("clickhouse_snapshots", "prefix", "", "storage.catalog_prefix"),
        ("clickhouse_snapshots", "prefix", "catalog/", "storage.catalog_prefix"),
        ("kafka_archive", "prefix", "emr/kafka/", "emr_archive.prefix"),
    ],
)
def test_areas_sharing_a_bucket_must_not_nest(
    write_config, example_config, section, key, value, other
) -> None:
    example_config[section][key] = value
    write_config(example_config)
    with pytest.raises(
        ConfigError, match=rf"{section}\.{key} .* and .*overlap|{other} .* and {section}\.{key}"
    ):
        load_config()


@pytest.mark.parametrize(
    ("section", "value", "shown"),
    [
        ("clickhouse_snapshots", "61 * * * *", "'61 * * * *' is not a cron schedule"),
        ("kafka_archive", "0 4 * *", "'0 4 * *' is not a cron schedule; use five fields"),
        ("emr_archive", "every day", "'every day' is not a cron schedule; use five fields"),
        ("dr_drill", "0 6 * * 8", "'0 6 * * 8' is not a cron schedule"),
        ("rpo_monitor", "*/15 * * * * *", "'*/15 * * * * *' is not a cron schedule; use five fields"),
    ],
)
def test_an_invalid_cron_names_file_and_key(write_config, example_config, section, value, shown) -> None:
    example_config[section]["schedule"] = value
    path = write_config(example_config)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"invalid config {path}: {section}.schedule: {shown}")


@pytest.mark.parametrize(
    ("section", "schedule", "item", "rpo", "shown", "gap"),
    [
        ("kafka_archive", "0 4 * * 1", "topics[0]", "1d", "1d", "7d"),
        ("clickhouse_snapshots", "0 * * * *", "datasets[0]", "20m", "20m", "1h"),
        ("emr_archive", "0 3 * * 1-5", "jobs[0]", "26h", "1d 2h", "3d"),  # no run at the weekend
        ("deep_archive_exports", "0 5 1 * *", "exports[1]", "30d", "30d", "31d"),
    ],
)
def test_an_rpo_the_schedule_cannot_meet_is_refused(
    write_config, example_config, section, schedule, item, rpo, shown, gap
) -> None:
    example_config[section]["schedule"] = schedule
    list_key, index = item[:-3], int(item[-2])
    example_config[section][list_key][index]["objectives"]["rpo"] = rpo
    path = write_config(example_config)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"invalid config {path}: {section}.{item}.objectives.rpo: {shown} (")
    assert f"runs up to {gap} apart" in message and f"use an rpo of at least {gap}" in message


def test_an_rpo_equal_to_the_longest_gap_is_accepted(write_config, example_config) -> None:
    example_config["kafka_archive"]["topics"][0]["objectives"]["rpo"] = "7d"
    example_config["clickhouse_snapshots"]["schedule"] = "@hourly"
    write_config(example_config)
    assert load_config().kafka_archive.topics[0].objectives.rpo == timedelta(days=7)


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 * * * *", timedelta(hours=1)),
        ("*/5 9-17 * * 1-5", timedelta(hours=63, minutes=5)),  # Friday 17:55 -> Monday 09:00
        ("0 5 1 * *", timedelta(days=31)),
        ("0 0 L * *", timedelta(days=31)),
        ("0 0 * * 1#2", timedelta(days=35)),
        ("0 0 13 * 5", timedelta(days=7)),  # the 13th or a Friday, as cron means it (not both)
        ("0 0 29 2 *", timedelta(days=1461)),
    ],
)
def test_longest_gap_between_runs(schedule: str, gap: timedelta) -> None:
    from backup_pipelines.core.config.types import longest_gap

    assert longest_gap(schedule) == gap
