"""Lifecycle rules: S3 order and minimum durations are checked before any call; merges keep foreign rules."""

from __future__ import annotations

import pytest

from backup_pipelines.core.errors import LifecyclePolicyError
from backup_pipelines.core.lifecycle import (
    TransitionSpec,
    aborting_rule,
    build_rule,
    merge_rules,
    package_rules,
    validate_policy,
)

T = TransitionSpec


def _rule(**kwargs):
    defaults = {
        "rule_id": "bp-emr",
        "prefix": "emr/",
        "transitions": [T(30, "GLACIER_IR"), T(180, "DEEP_ARCHIVE")],
        "expiration_days": None,
        "abort_incomplete_multipart_days": 7,
    }
    return build_rule(**{**defaults, **kwargs})


def test_default_policy_rule_shape() -> None:
    assert _rule() == {
        "ID": "bp-emr",
        "Filter": {"Prefix": "emr/"},
        "Status": "Enabled",
        "Transitions": [
            {"Days": 30, "StorageClass": "GLACIER_IR"},
            {"Days": 180, "StorageClass": "DEEP_ARCHIVE"},
        ],
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }


@pytest.mark.parametrize(
    ("transitions", "expiration", "message"),
    [
        ([T(10, "STANDARD_IA")], None, r"transitions\[0\]: STANDARD_IA after 10 days; S3 needs at least 30"),
        ([T(30, "GLACIER"), T(60, "GLACIER_IR")], None, "GLACIER -> GLACIER_IR goes up"),
        ([T(30, "GLACIER"), T(100, "DEEP_ARCHIVE")], None, "GLACIER has a minimum storage duration of 90"),
        ([T(30, "GLACIER_IR"), T(60, "DEEP_ARCHIVE")], None, "use day >= 120"),
        ([T(30, "STANDARD_IA"), T(45, "GLACIER")], None, "STANDARD_IA has a minimum storage duration of 30"),
        ([T(30, "GLACIER_IR"), T(30, "GLACIER_IR")], None, "goes up"),
        ([T(0, "DEEP_ARCHIVE")], 90, "cuts DEEP_ARCHIVE .* short of its minimum storage duration of 180"),
        ([T(5, "STANDARD")], None, "'STANDARD' is not a transition target"),
        ([], 0, "expiration_days: must be >= 1"),
    ],
)
def test_invalid_policies_are_rejected_with_the_field(transitions, expiration, message) -> None:
    with pytest.raises(LifecyclePolicyError, match=message):
        validate_policy(transitions, expiration_days=expiration)


def test_valid_policies() -> None:
    validate_policy(
        [T(30, "STANDARD_IA"), T(60, "GLACIER_IR"), T(150, "GLACIER"), T(240, "DEEP_ARCHIVE")],
        expiration_days=420,
    )
    validate_policy([T(0, "GLACIER")], expiration_days=None)
    validate_policy([], expiration_days=1)


def test_merge_keeps_foreign_rules_and_replaces_owned_by_id() -> None:
    foreign = {
        "ID": "logs-expiry",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 14},
    }
    old_ours = _rule(transitions=[T(60, "GLACIER")])
    result = merge_rules([foreign, old_ours], [_rule()])
    assert result.changed
    assert result.rules == [foreign, _rule()]
    assert result.kept == ["logs-expiry"] and result.replaced == ["bp-emr"] and result.added == []


def test_merge_is_a_no_op_when_the_bucket_already_holds_the_rule() -> None:
    # S3 echoes rules with empty fields; they compare equal.
    echoed = {**_rule(), "NoncurrentVersionTransitions": [], "Expiration": None}
    result = merge_rules([echoed], [_rule()])
    assert not result.changed


def test_merge_adds_missing_rule() -> None:
    result = merge_rules([], [_rule()])
    assert result.changed and result.added == ["bp-emr"]


def _cfg(**sections):
    from backup_pipelines.core.config import BackupConfig

    return BackupConfig.model_validate(
        {
            "storage": {"backup_bucket": "bkp", "archive_bucket": "arc"},
            "alerts": {"recipients": ["oncall@example.com"]},
            **sections,
        }
    )


def test_the_package_owns_one_rule_per_prefix_it_writes_in_both_buckets() -> None:
    rules = package_rules(_cfg(rpo_monitor={"status_key": "ops/status/rpo.json"}))
    prefixes = {b: {r["ID"]: r["Filter"]["Prefix"] for r in rs} for b, rs in rules.items()}
    assert prefixes == {
        "bkp": {
            "backup-pipelines-catalog": "catalog/",
            "backup-pipelines-clickhouse": "clickhouse/",
            "backup-pipelines-reports": "reports/dr-drill/",
            "backup-pipelines-status": "ops/status/",
        },
        "arc": {
            "backup-pipelines-emr": "emr/",
            "backup-pipelines-kafka": "kafka/",
            "backup-pipelines-exports": "exports/",
        },
    }
    for rule in [r for rs in rules.values() for r in rs]:
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}, rule["ID"]
        assert ("Transitions" in rule) == (rule["ID"] == "backup-pipelines-emr")


def test_one_bucket_for_both_gets_every_rule_and_ids_must_not_collide() -> None:
    rules = package_rules(_cfg(storage={"backup_bucket": "one1", "archive_bucket": "one1"}))
    assert list(rules) == ["one1"] and len(rules["one1"]) == 7
    clash = _cfg(emr_archive={"lifecycle": {"rule_id": "backup-pipelines-kafka"}})
    with pytest.raises(
        LifecyclePolicyError,
        match="'backup-pipelines-kafka' is used for both emr_archive.prefix and kafka_archive.prefix",
    ):
        package_rules(clash)


def test_aborting_rule_matches_enabled_prefix_rules_that_abort_uploads() -> None:
    rules = [
        {
            "ID": "off",
            "Filter": {"Prefix": "a/"},
            "Status": "Disabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        {"ID": "expire-only", "Filter": {"Prefix": "a/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
        {
            "ID": "legacy",
            "Prefix": "b/",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
        },
    ]
    assert aborting_rule(rules, "a/x") is None
    assert aborting_rule(rules, "b/日本 x")["ID"] == "legacy"
    assert aborting_rule(rules, "c/x") is None
