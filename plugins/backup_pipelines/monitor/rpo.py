"""RPO arithmetic and breach state: how old is each dataset's newest verified point, and what changed.

Everything here is plain data in and plain data out except the few functions that take an
``S3Hook``/``Catalog``; the monitor DAG, the freshness sensor, the trigger and the SLA-miss email
all read ages through :func:`measure`, so they can never disagree about what "fresh" means.

Breach state lives in the status JSON the monitor writes to S3 (``rpo_monitor.status_key`` in the
backup bucket). It survives between 15-minute runs, so a breach sends one ``[RPO BREACH]`` email when
it starts and one ``[RPO RECOVERED]`` email when it clears, never one every run.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from backup_pipelines.core import catalog as catalog_module
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

STATUS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Target:
    """One protected dataset and the RPO it must meet."""

    kind: str
    dataset: str
    rpo_seconds: float

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.dataset}"

    def to_list(self) -> list[Any]:
        """JSON-friendly form, for trigger and callback kwargs."""
        return [self.kind, self.dataset, self.rpo_seconds]

    @classmethod
    def from_list(cls, value: Sequence[Any]) -> Target:
        kind, dataset, rpo_seconds = value
        return cls(str(kind), str(dataset), float(rpo_seconds))


def targets(
    cfg: BackupConfig, *, kinds: Iterable[str] | None = None, dataset: str | None = None
) -> list[Target]:
    """Configured datasets, optionally only some kinds or one dataset name."""
    wanted = set(kinds) if kinds is not None else None
    return [
        Target(kind, name, objectives.rpo.total_seconds())
        for kind, name, objectives in cfg.datasets()
        if (wanted is None or kind in wanted) and (dataset is None or name == dataset)
    ]


@dataclass(frozen=True)
class Age:
    """How old a dataset's newest verified recovery point is, measured at ``measured_at``."""

    target: Target
    measured_at: datetime
    newest_id: str | None = None
    captured_at: datetime | None = None
    error: str | None = None
    # What the newest point's producer warned about, e.g. a Kafka topic whose retention.ms is
    # shorter than the archive window plus grace: the dataset is fresh, but at risk.
    warning: str | None = None

    @property
    def age_seconds(self) -> float | None:
        if self.captured_at is None:
            return None
        return (self.measured_at - self.captured_at).total_seconds()

    @property
    def fresh(self) -> bool:
        """Within RPO. No verified point, or an unreadable catalog, counts as a breach."""
        age = self.age_seconds
        return age is not None and age < self.target.rpo_seconds

    def describe(self) -> str:
        """One line a person reads in an email or a task log."""
        rpo = human_duration(self.target.rpo_seconds)
        if self.error:
            return f"{self.target.key}: age unknown ({self.error}); RPO {rpo}"
        if self.age_seconds is None:
            return f"{self.target.key}: no verified recovery point; RPO {rpo}"
        verdict = "within RPO" if self.fresh else "RPO BREACHED"
        return (
            f"{self.target.key}: newest verified recovery point {self.newest_id} captured "
            f"{self.captured_at:%Y-%m-%d %H:%M:%S} UTC, age {human_duration(self.age_seconds)}; "
            f"RPO {rpo}: {verdict}"
        )

    def as_status(self) -> dict[str, Any]:
        return {
            "kind": self.target.kind,
            "dataset": self.target.dataset,
            "rpo_seconds": self.target.rpo_seconds,
            "newest_verified": self.newest_id,
            "captured_at": self.captured_at.isoformat() if self.captured_at else None,
            "age_seconds": round(self.age_seconds, 3) if self.age_seconds is not None else None,
            "fresh": self.fresh,
            "error": self.error,
            "warning": self.warning,
        }


def human_duration(seconds: float) -> str:
    """``5400`` -> ``1h 30m``; negative ages (clock skew) are shown as such, not hidden."""
    sign = "-" if seconds < 0 else ""
    remaining = int(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size or (unit == "s" and not parts):
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def measure(catalog: Catalog, target: Target, *, now: datetime | None = None) -> Age:
    """The age of one dataset's newest *verified* point; a catalog error becomes a reported breach."""
    measured_at = now or catalog_module.utcnow()
    try:
        newest = catalog.latest_verified(target.kind, target.dataset)
    except Exception as exc:  # an unreadable catalog is itself an RPO problem: report it, don't crash
        log.warning("RPO: cannot read the catalog of %s: %s", target.key, exc)
        return Age(target, measured_at, error=f"{type(exc).__name__}: {exc}")
    if newest is None:
        return Age(target, measured_at)
    return Age(
        target,
        measured_at,
        newest_id=newest.recovery_point_id,
        captured_at=newest.captured_at,
        warning=newest.details.get("retention_warning"),
    )


def measure_all(catalog: Catalog, items: Iterable[Target], *, now: datetime | None = None) -> list[Age]:
    at = now or catalog_module.utcnow()
    return [measure(catalog, target, now=at) for target in items]


def catalog_for(*, aws_conn_id: str, bucket: str, prefix: str) -> Catalog:
    """A read-only catalog from plain values (what triggers and callbacks receive as kwargs)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return Catalog(S3Hook(aws_conn_id=aws_conn_id), bucket=bucket, prefix=prefix)


# -- breach state ---------------------------------------------------------------------------------


class DatasetState(BaseModel):
    """Breach state of one dataset, carried from one monitor run to the next."""

    model_config = ConfigDict(extra="ignore")

    breached: bool = False
    breached_since: datetime | None = None
    breach_notified_at: datetime | None = None
    recovered_at: datetime | None = None


class Status(BaseModel):
    """The status JSON the monitor writes: ages for dashboards, breach state for the next run."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = STATUS_SCHEMA_VERSION
    generated_at: datetime | None = None
    run_id: str | None = None
    datasets: list[dict[str, Any]] = []
    state: dict[str, DatasetState] = {}


@dataclass(frozen=True)
class Transition:
    """A change worth one email: a dataset started breaching its RPO, or stopped."""

    kind: Literal["breach", "recovered"]
    age: Age
    breached_since: datetime | None


def transitions(previous: dict[str, DatasetState], ages: Sequence[Age]) -> list[Transition]:
    """Compare this run's ages with the stored state; only edges produce a transition."""
    changes = []
    for age in ages:
        before = previous.get(age.target.key, DatasetState())
        if not age.fresh and not before.breached:
            changes.append(Transition("breach", age, age.measured_at))
        elif age.fresh and before.breached:
            changes.append(Transition("recovered", age, before.breached_since))
    return changes


def apply(previous: dict[str, DatasetState], change: Transition) -> dict[str, DatasetState]:
    """The state after one transition's email has been sent."""
    state = dict(previous)
    key = change.age.target.key
    if change.kind == "breach":
        state[key] = DatasetState(
            breached=True, breached_since=change.breached_since, breach_notified_at=change.age.measured_at
        )
    else:
        state[key] = DatasetState(breached=False, recovered_at=change.age.measured_at)
    return state


def build_status(
    ages: Sequence[Age], state: dict[str, DatasetState], *, run_id: str | None, now: datetime
) -> Status:
    keys = {age.target.key for age in ages}
    # Datasets removed from the config drop out of the state: a later re-add starts clean.
    kept = {key: value for key, value in state.items() if key in keys}
    return Status(generated_at=now, run_id=run_id, datasets=[a.as_status() for a in ages], state=kept)


def read_status(hook: S3Hook, *, bucket: str, key: str) -> Status:
    """The previous status; missing means "nothing breached yet", corrupt is logged and reset."""
    if not hook.check_for_key(key, bucket):
        log.info("RPO: no previous status at s3://%s/%s; starting with no breaches", bucket, key)
        return Status()
    raw = hook.read_key(key, bucket)
    try:
        return Status.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        log.warning("RPO: status s3://%s/%s is unreadable (%s); starting with no breaches", bucket, key, exc)
        return Status()


def write_status(hook: S3Hook, status: Status, *, bucket: str, key: str, encryption: dict[str, str]) -> None:
    client: Any = hook.get_conn()
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=status.model_dump_json(indent=2).encode(),
        ContentType="application/json",
        **encryption,
    )
    log.info("RPO: wrote status of %d dataset(s) to s3://%s/%s", len(status.datasets), bucket, key)


# -- emails ---------------------------------------------------------------------------------------


def transition_email(change: Transition) -> tuple[str, str]:
    """Subject and HTML body of a breach or recovery email."""
    age = change.age
    target = age.target
    since = change.breached_since
    age_text = human_duration(age.age_seconds) if age.age_seconds is not None else "no verified point"
    if change.kind == "breach":
        if age.age_seconds is None:
            subject = f"[RPO BREACH] {target.key}: no verified recovery point"
        else:
            subject = f"[RPO BREACH] {target.key}: newest verified recovery point is {age_text} old"
        intro = "The newest verified recovery point of this dataset is older than its RPO."
    else:
        lasted = human_duration((age.measured_at - since).total_seconds()) if since else "unknown"
        subject = f"[RPO RECOVERED] {target.key}: back within RPO (breach lasted {lasted})"
        intro = "This dataset is back within its RPO."
    rows = [
        ("Dataset", target.key),
        ("RPO", human_duration(target.rpo_seconds)),
        ("Newest verified recovery point", age.newest_id or "none"),
        ("Captured at", f"{age.captured_at:%Y-%m-%d %H:%M:%S} UTC" if age.captured_at else "-"),
        ("Age", age_text),
        ("Measured at", f"{age.measured_at:%Y-%m-%d %H:%M:%S} UTC"),
        (
            "Breach started",
            f"{change.breached_since:%Y-%m-%d %H:%M:%S} UTC" if change.breached_since else "-",
        ),
    ]
    if age.error:
        rows.append(("Catalog error", age.error))
    if age.warning:
        rows.append(("Warning", age.warning))
    body = f"<p>{html.escape(intro)}</p>" + html_table(rows)
    return subject, body


def html_table(rows: Iterable[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def gauge_name(target: Target) -> str:
    """Metric name of a dataset's age (StatsD names: letters, digits, dots, underscores, dashes)."""
    return f"backup_pipelines.rpo.age_seconds.{target.kind}.{target.dataset}"


def age_for_metrics(age: Age) -> float:
    """Seconds for ``Stats.gauge``; with no verified point, report a very large age (always a breach)."""
    seconds = age.age_seconds
    return seconds if seconds is not None else timedelta(days=3650).total_seconds()


# -- the monitor ----------------------------------------------------------------------------------


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
            "emails": self.emails,
            "status": self.status_url,
        }


def run_monitor(
    cfg: BackupConfig,
    *,
    run_id: str | None,
    now: datetime | None = None,
    gauge: Callable[..., None] | None = None,
    send: Callable[..., None] | None = None,
) -> MonitorResult:
    """One monitor pass: measure, publish gauges, email breach/recovery edges, write the status JSON.

    Each email is followed by a status write, so a crash after an email never sends it twice; a
    failed email leaves the state unchanged, so the retry sends it (at least once, never silently).
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from backup_pipelines.monitor import alerts

    if gauge is None:
        from airflow.sdk.observability.stats import Stats

        gauge = Stats.gauge
    send = send or alerts.send_email_sync
    now = now or catalog_module.utcnow()
    hook = S3Hook(aws_conn_id=cfg.connections.aws)
    catalog = Catalog(
        hook,
        bucket=cfg.storage.backup_bucket,
        prefix=cfg.storage.catalog_prefix,
        encryption=cfg.storage.encryption,
    )
    bucket, key = cfg.storage.backup_bucket, cfg.rpo_monitor.status_key
    encryption = cfg.storage.encryption.s3_extra_args()

    ages = measure_all(catalog, targets(cfg), now=now)
    for age in ages:
        log.info("RPO: %s", age.describe())
        if age.warning:
            log.warning("RPO: %s: %s", age.target.key, age.warning)
        gauge(gauge_name(age.target), age_for_metrics(age))
        gauge(f"backup_pipelines.rpo.breached.{age.target.kind}.{age.target.dataset}", 0 if age.fresh else 1)

    previous = read_status(hook, bucket=bucket, key=key)
    state = dict(previous.state)
    emails = []
    for change in transitions(state, ages):
        subject, body = transition_email(change)
        send(
            smtp_conn_id=cfg.connections.smtp,
            from_email=cfg.alerts.from_email,
            to=list(cfg.alerts.recipients),
            subject=subject,
            html_content=body,
        )
        log.info("RPO: emailed %s: %s", ", ".join(cfg.alerts.recipients), subject)
        emails.append(subject)
        state = apply(state, change)
        write_status(
            hook,
            build_status(ages, state, run_id=run_id, now=now),
            bucket=bucket,
            key=key,
            encryption=encryption,
        )
    write_status(
        hook, build_status(ages, state, run_id=run_id, now=now), bucket=bucket, key=key, encryption=encryption
    )
    return MonitorResult(ages=ages, emails=emails, status_url=f"s3://{bucket}/{key}")
