"""S3 lifecycle rules from config: validated before any call, merged by rule ID with the bucket's.

Both buckets are shared (the archive bucket by EMR outputs, Kafka archives and exports) and may
carry rules written by people or other tools. So the package owns exactly one rule ID per prefix it
writes (``package_rules``): it replaces that rule, keeps every other rule as it is, and writes
nothing when the bucket already holds the same rules. Every owned rule aborts incomplete multipart
uploads, so an upload left by a killed task (or by ClickHouse's own BACKUP) is cleaned up by S3.

Validation follows S3's "constraints and considerations for transitions":

- storage classes only move *down* the waterfall STANDARD -> STANDARD_IA -> INTELLIGENT_TIERING
  -> ONEZONE_IA -> GLACIER_IR -> GLACIER -> DEEP_ARCHIVE, each class at most once, days strictly
  increasing;
- STANDARD_IA / ONEZONE_IA need ``days >= 30`` (S3 rejects earlier IA transitions);
- an object must stay in a class for that class's minimum storage duration before the next
  transition or the expiration (STANDARD_IA / ONEZONE_IA 30 days, GLACIER_IR / GLACIER 90 days,
  DEEP_ARCHIVE 180 days). S3 itself only *bills* some of these early moves (early-deletion fees);
  this module refuses them all, because an archive policy that pays them is a mistake;
- the expiration comes after the last transition (or is absent: "forever" retention).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backup_pipelines.core.errors import LifecyclePolicyError

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig

RULE_ID_PREFIX = "backup-pipelines-"

WATERFALL = (
    "STANDARD",
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)
MIN_STORAGE_DAYS = {
    "STANDARD": 0,
    "STANDARD_IA": 30,
    "INTELLIGENT_TIERING": 0,
    "ONEZONE_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
}
MIN_DAYS_BEFORE = {"STANDARD_IA": 30, "ONEZONE_IA": 30}


@dataclass(frozen=True)
class TransitionSpec:
    days: int
    storage_class: str


def validate_policy(
    transitions: Sequence[TransitionSpec],
    *,
    expiration_days: int | None,
    where: str = "lifecycle",
) -> None:
    """Raise ``LifecyclePolicyError`` naming the first transition S3 (or its pricing) forbids."""
    previous: TransitionSpec | None = None
    for n, step in enumerate(transitions):
        name = f"{where}.transitions[{n}]"
        if step.storage_class not in WATERFALL or step.storage_class == "STANDARD":
            raise LifecyclePolicyError(f"{name}: {step.storage_class!r} is not a transition target")
        if step.days < 0:
            raise LifecyclePolicyError(f"{name}: days must be >= 0, got {step.days}")
        minimum = MIN_DAYS_BEFORE.get(step.storage_class, 0)
        if step.days < minimum:
            raise LifecyclePolicyError(
                f"{name}: {step.storage_class} after {step.days} days; S3 needs at least {minimum} days "
                f"in STANDARD before a {step.storage_class} transition"
            )
        if previous is not None:
            if WATERFALL.index(step.storage_class) <= WATERFALL.index(previous.storage_class):
                raise LifecyclePolicyError(
                    f"{name}: {previous.storage_class} -> {step.storage_class} goes up S3's storage-class "
                    f"order ({' -> '.join(WATERFALL)}); lifecycle transitions only go down"
                )
            held = step.days - previous.days
            needed = MIN_STORAGE_DAYS[previous.storage_class]
            if held <= 0 or held < needed:
                raise LifecyclePolicyError(
                    f"{name}: {step.storage_class} at day {step.days} is {held} days after "
                    f"{previous.storage_class} at day {previous.days}; {previous.storage_class} has a "
                    f"minimum storage duration of {needed} days (use day >= {previous.days + max(needed, 1)})"
                )
        previous = step
    if expiration_days is not None:
        if expiration_days < 1:
            raise LifecyclePolicyError(f"{where}.expiration_days: must be >= 1, got {expiration_days}")
        if previous is not None:
            needed = MIN_STORAGE_DAYS[previous.storage_class]
            if expiration_days - previous.days < max(needed, 1):
                raise LifecyclePolicyError(
                    f"{where}.expiration_days: expiring at day {expiration_days} cuts "
                    f"{previous.storage_class} (from day {previous.days}) short of its minimum storage "
                    f"duration of {needed} days (use >= {previous.days + max(needed, 1)})"
                )


def build_rule(
    *,
    rule_id: str,
    prefix: str,
    transitions: Sequence[TransitionSpec],
    expiration_days: int | None,
    abort_incomplete_multipart_days: int | None,
) -> dict[str, Any]:
    """One S3 lifecycle rule (the shape ``PutBucketLifecycleConfiguration`` takes)."""
    validate_policy(transitions, expiration_days=expiration_days, where=f"lifecycle rule {rule_id}")
    rule: dict[str, Any] = {"ID": rule_id, "Filter": {"Prefix": prefix}, "Status": "Enabled"}
    if transitions:
        rule["Transitions"] = [{"Days": t.days, "StorageClass": t.storage_class} for t in transitions]
    if expiration_days is not None:
        rule["Expiration"] = {"Days": expiration_days}
    if abort_incomplete_multipart_days is not None:
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort_incomplete_multipart_days}
    return rule


def _canonical(rule: dict[str, Any]) -> str:
    """A comparable form of a rule: S3 may echo empty fields or a legacy top-level Prefix."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in sorted(value.items()) if v not in (None, [], {}, "")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    body = clean(rule)
    if "Prefix" in body and "Filter" not in body:
        body["Filter"] = {"Prefix": body.pop("Prefix")}
    return json.dumps(body, sort_keys=True, default=str)


@dataclass(frozen=True)
class MergeResult:
    rules: list[dict[str, Any]]
    changed: bool
    added: list[str]
    replaced: list[str]
    kept: list[str]


def merge_rules(existing: Iterable[dict[str, Any]], owned: Iterable[dict[str, Any]]) -> MergeResult:
    """Replace the rules whose IDs we own, keep every other rule untouched and in place."""
    owned_by_id = {rule["ID"]: rule for rule in owned}
    merged: list[dict[str, Any]] = []
    replaced: list[str] = []
    kept: list[str] = []
    changed = False
    for rule in existing:
        rule_id = rule.get("ID", "")
        if rule_id in owned_by_id:
            new = owned_by_id.pop(rule_id)
            changed = changed or _canonical(rule) != _canonical(new)
            merged.append(new)
            replaced.append(rule_id)
        else:
            merged.append(rule)
            kept.append(rule_id)
    added = list(owned_by_id)
    merged.extend(owned_by_id.values())
    if len(merged) > 1000:
        raise LifecyclePolicyError(f"the bucket would hold {len(merged)} lifecycle rules; S3 allows 1000")
    return MergeResult(merged, changed or bool(added), added, replaced, kept)


@dataclass(frozen=True)
class ManagedPrefix:
    """A prefix this package writes to, and the ID of the lifecycle rule it owns for it."""

    bucket: str
    prefix: str
    setting: str
    rule_id: str


def managed_prefixes(cfg: BackupConfig) -> list[ManagedPrefix]:
    """Every prefix the package writes (multipart uploads included), as configured, by bucket.

    Backup bucket: the catalog, ClickHouse backups (ClickHouse's own BACKUP uploads in parts), the
    drill's reports and the RPO status. Archive bucket: EMR copies, Kafka archive files (uploaded in
    parts above 64 MiB) and exports (ClickHouse writes them in parts).
    """
    status_key = cfg.rpo_monitor.status_key
    status_prefix = status_key.rsplit("/", 1)[0] + "/" if "/" in status_key else status_key
    backup, archive = cfg.storage.backup_bucket, cfg.storage.archive_bucket
    rows = [
        (backup, cfg.storage.catalog_prefix, "storage.catalog_prefix", "catalog"),
        (backup, cfg.clickhouse_snapshots.prefix, "clickhouse_snapshots.prefix", "clickhouse"),
        (backup, cfg.dr_drill.report_prefix, "dr_drill.report_prefix", "reports"),
        (backup, status_prefix, "rpo_monitor.status_key", "status"),
        (archive, cfg.emr_archive.prefix, "emr_archive.prefix", ""),
        (archive, cfg.kafka_archive.prefix, "kafka_archive.prefix", "kafka"),
        (archive, cfg.deep_archive_exports.prefix, "deep_archive_exports.prefix", "exports"),
    ]
    return [
        ManagedPrefix(
            bucket, prefix, setting, f"{RULE_ID_PREFIX}{area}" if area else cfg.emr_archive.lifecycle.rule_id
        )
        for bucket, prefix, setting, area in rows
    ]


def package_rules(cfg: BackupConfig) -> dict[str, list[dict[str, Any]]]:
    """The lifecycle rules the package owns, by bucket: the EMR rule (transitions, expiration) and,
    for every other prefix it writes, a rule that only aborts incomplete multipart uploads.

    Every rule aborts uploads left incomplete for ``emr_archive.lifecycle.abort_incomplete_multipart_days``
    (a task killed mid-upload cannot abort its own). Validated before any S3 call.
    """
    lc = cfg.emr_archive.lifecycle
    rules: dict[str, list[dict[str, Any]]] = {}
    seen: dict[str, str] = {}
    for area in managed_prefixes(cfg):
        if area.rule_id in seen:
            raise LifecyclePolicyError(
                f"lifecycle rule ID {area.rule_id!r} is used for both {seen[area.rule_id]} and {area.setting}"
            )
        seen[area.rule_id] = area.setting
        is_emr = area.setting == "emr_archive.prefix"
        rule = build_rule(
            rule_id=area.rule_id,
            prefix=area.prefix,
            transitions=[TransitionSpec(t.days, t.storage_class) for t in lc.transitions] if is_emr else [],
            expiration_days=lc.expiration_days if is_emr else None,
            abort_incomplete_multipart_days=lc.abort_incomplete_multipart_days,
        )
        rules.setdefault(area.bucket, []).append(rule)
    return rules


def aborting_rule(rules: Iterable[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The enabled rule that aborts an incomplete multipart upload of ``key``, if any (prefix filters)."""
    for rule in rules:
        prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix"))
        if (
            rule.get("Status") == "Enabled"
            and prefix is not None
            and key.startswith(prefix)
            and rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
        ):
            return rule
    return None
