"""One pass of the RPO monitor: measure, publish gauges, email breach/recovery edges, write the status.

Each email is followed by a status write, so a crash after an email never sends it twice; a failed
email leaves the state unchanged, so the retry sends it (at least once, never silently).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from backup_pipelines.core import clock, notify
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, human_duration
from backup_pipelines.core.regions import region_catalog
from backup_pipelines.monitor.kafka_health import with_kafka_health
from backup_pipelines.monitor.rpo import Age, age_for_metrics, dr_targets, gauge_name, measure_all, targets
from backup_pipelines.monitor.status import (
    StatusCopy,
    Transition,
    apply,
    build_status,
    read_newest,
    transitions,
    write_copies,
)
from backup_pipelines.recovery.effective import effective_rpos

log = logging.getLogger(__name__)


def transition_email(change: Transition) -> notify.Message:
    """The breach or recovery email of one dataset."""
    age = change.age
    target = age.target
    since = change.breached_since
    dr = target.region == "dr"
    tag, rpo_name = ("DR RPO", "DR-region RPO") if dr else ("RPO", "RPO")
    what = "replica in the DR region" if dr else "recovery point"
    age_text = human_duration(age.age_seconds) if age.age_seconds is not None else "no verified point"
    if change.kind == "breach":
        if age.error:
            subject = f"[{tag} BREACH] {target.key}: catalog unreachable, age unknown"
        elif age.age_seconds is None:
            subject = f"[{tag} BREACH] {target.key}: no verified {what}"
        else:
            subject = f"[{tag} BREACH] {target.key}: newest verified {what} is {age_text} old"
        intro = f"The newest verified {what} of this dataset is older than its {rpo_name}, or unknown."
    else:
        lasted = human_duration((age.measured_at - since).total_seconds()) if since else "unknown"
        subject = f"[{tag} RECOVERED] {target.key}: back within {rpo_name} (breach lasted {lasted})"
        intro = f"This dataset is back within its {rpo_name}."
    rows = [
        ("Dataset", target.key),
        ("Region", "DR" if dr else "primary"),
        (rpo_name, human_duration(target.rpo_seconds)),
        ("Newest verified recovery point", age.newest_id or "none"),
        ("Captured at", f"{age.captured_at:%Y-%m-%d %H:%M:%S} UTC" if age.captured_at else "-"),
        ("Age", age_text),
        ("Measured at", f"{age.measured_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("Breach started", f"{since:%Y-%m-%d %H:%M:%S} UTC" if since else "-"),
    ]
    if age.effective_text:
        rows.append(("Effective RPO (snapshot + Kafka replay)", age.effective_text))
    if age.error:
        rows.append(("Catalog error", age.error))
    if age.warning:
        rows.append(("Warning", age.warning))
    if age.breach:
        rows.append(("Breach", age.breach))
        if change.kind == "breach":
            subject = f"[RPO BREACH] {target.key}: {age.breach.split(':', 1)[0]}"
            intro = "Records of this dataset that no recovery point holds yet are at risk of deletion."
    return notify.Message.of(subject, notify.Body().para(intro).table(rows))


@dataclass
class MonitorResult:
    ages: list[Age]
    emails: list[str]
    status_url: str

    def summary(self) -> dict[str, Any]:
        """What the task returns (XCom): plain JSON, no secrets."""
        return {
            "datasets": [a.as_status() for a in self.ages],
            "breached": [a.target.key for a in self.ages if not a.fresh],
            "warnings": {a.target.key: a.warning for a in self.ages if a.warning},
            "effective_rpo": {a.target.key: a.effective_text for a in self.ages if a.effective_text},
            "emails": self.emails,
            "status": self.status_url,
        }


def run_monitor(
    cfg: BackupConfig,
    *,
    run_id: str | None,
    now: datetime | None = None,
    gauge: Callable[..., None] | None = None,
    send: Callable[..., None] = notify.send,
) -> MonitorResult:
    """One monitor pass; ``gauge`` defaults to Airflow's ``Stats.gauge``, ``send`` to ``notify.send``."""
    if gauge is None:
        from airflow.sdk.observability.stats import Stats

        gauge = Stats.gauge
    now = now or clock.utcnow()
    catalog = Catalog.from_config(cfg)
    bucket, key = cfg.storage.backup_bucket, cfg.rpo_monitor.status_key
    copies = [StatusCopy("primary", catalog.s3, bucket, cfg.storage.encryption)]

    ages = with_kafka_health(cfg, catalog, measure_all(catalog, targets(cfg), now=now), now=now)
    effective = effective_rpos(cfg, catalog, now=now)  # datasets with ingest: snapshot + Kafka replay
    ages = [replace(a, effective=effective.get(a.target.key)) for a in ages]
    if cfg.storage.replica is not None:  # the DR region: measured even when the primary is down
        dr_catalog = region_catalog(cfg, "dr")
        ages += measure_all(dr_catalog, dr_targets(cfg), now=now)
        copies.append(StatusCopy("dr", dr_catalog.s3, dr_catalog.bucket, cfg.storage.replica.encryption))
    for age in ages:
        log.info("RPO: %s", age.describe())
        if age.warning:
            log.warning("RPO: %s: %s", age.target.key, age.warning)
        gauge(gauge_name(age.target), age_for_metrics(age))
        gauge(gauge_name(age.target, "breached"), 0 if age.fresh else 1)

    state = dict(read_newest(copies, key=key).state)
    emails = []
    for change in transitions(state, ages):
        message = transition_email(change)
        send(
            message,
            smtp_conn_id=cfg.connections.smtp,
            from_email=cfg.alerts.from_email,
            to=cfg.alerts.recipients,
        )
        emails.append(message.subject)
        state = apply(state, change)
        write_copies(copies, build_status(ages, state, run_id=run_id, now=now), key=key)
    written = write_copies(copies, build_status(ages, state, run_id=run_id, now=now), key=key)
    where = {c.region: f"s3://{c.bucket}/{key}" for c in copies}
    return MonitorResult(ages=ages, emails=emails, status_url=where[written[0]])
