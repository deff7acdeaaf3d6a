"""Sensors that wait on a check: recovery-point freshness (first task of the DR drill).

``PollingCheckSensor`` is the base: a subclass names a sync check function (``check_path``) and
builds its JSON kwargs in ``check_kwargs``; ``poke`` calls the function, and in deferrable mode the
task checks once and then hands the wait to ``PollingCheckTrigger`` in the triggerer, which calls
the same function. Any other "wait until this holds" (the Kafka retention guard) reuses it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from backup_pipelines.core.errors import ConfigError
from backup_pipelines.monitor.triggers import (
    PollingCheckTrigger,
    RecoveryPointFreshnessTrigger,
    run_check,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

CHECK_FRESHNESS = "backup_pipelines.monitor.sensors.check_recovery_point_freshness"


def check_recovery_point_freshness(
    *, aws_conn_id: str, bucket: str, catalog_prefix: str, datasets: list[list[Any]]
) -> dict[str, Any]:
    """OK when every dataset's newest *verified* recovery point is younger than its RPO."""
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.monitor import rpo

    catalog = Catalog.open(aws_conn_id=aws_conn_id, bucket=bucket, prefix=catalog_prefix)
    ages = rpo.measure_all(catalog, [rpo.Target.from_list(d) for d in datasets])
    stale = [a for a in ages if not a.fresh]
    return {
        "ok": not stale,
        "detail": "; ".join(a.describe() for a in (stale or ages)),
        "ages": {a.target.key: a.age_seconds for a in ages},
        "newest_verified": {a.target.key: a.newest_id for a in ages},
    }


class PollingCheckSensor(BaseSensorOperator):
    """Wait until a check function returns ``ok``; deferrable by default (the wait runs in the triggerer).

    Subclasses set ``check_path`` and implement ``check_kwargs``. The check's result dict (JSON) is
    the task's return value (XCom), so downstream tasks see what was found; with ``xcom_key`` each
    poke's finding is also pushed under that key, so it is there when the sensor ends skipped.
    """

    check_path: str = ""
    trigger_class: type[PollingCheckTrigger] = PollingCheckTrigger

    def __init__(self, *, deferrable: bool = True, xcom_key: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.xcom_key = xcom_key

    def check_kwargs(self, context: Context) -> dict[str, Any]:
        raise NotImplementedError

    def _check(self, context: Context) -> dict[str, Any]:
        result = run_check(self.check_path, self.check_kwargs(context))
        self.log.info("%s: %s", "met" if result["ok"] else "not met", result.get("detail"))
        return result

    def poke(self, context: Context) -> PokeReturnValue:
        result = self._check(context)
        if self.xcom_key:  # every poke's finding, also when the sensor ends skipped (soft_fail)
            context["ti"].xcom_push(key=self.xcom_key, value=result)
        return PokeReturnValue(is_done=bool(result["ok"]), xcom_value=result)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        kwargs = self.check_kwargs(context)
        result = run_check(self.check_path, kwargs)
        if result["ok"]:  # already true: no trip through the triggerer
            self.log.info("met: %s", result.get("detail"))
            return result
        self.log.info("not met yet, deferring: %s", result.get("detail"))
        timeout = float(self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout)
        self.defer(
            trigger=self.trigger_class(
                check_path=self.check_path,
                check_kwargs=kwargs,
                poll_interval=float(self.poke_interval),
                timeout_at=time.time() + timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status == "success":
            self.log.info("met after %s poll(s): %s", event.get("polls"), event.get("detail"))
            return event
        if status == "timeout":
            raise AirflowSensorTimeout(f"{self.task_id} timed out: {event.get('detail')}")
        raise RuntimeError(f"{self.task_id}: the check failed in the triggerer: {event.get('detail')}")


class RecoveryPointFreshnessSensor(PollingCheckSensor):
    """Succeeds when the newest *verified* recovery point of each selected dataset is within its RPO.

    :param kind: only datasets of this catalog kind (``clickhouse_snapshot``, ...); None = every kind.
    :param dataset: only this dataset name; None = every configured dataset of ``kind``.
    :param max_age: override the configured RPO (e.g. a drill that wants "captured today").

    Datasets and RPOs come from the config at run time. No matching dataset is a config error.
    """

    template_fields: Sequence[str] = ("kind", "dataset")
    check_path = CHECK_FRESHNESS
    trigger_class = RecoveryPointFreshnessTrigger

    def __init__(
        self,
        *,
        kind: str | None = None,
        dataset: str | None = None,
        max_age: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.dataset = dataset
        self.max_age = max_age

    def check_kwargs(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.config import load_config
        from backup_pipelines.monitor import rpo

        cfg = load_config()
        items = rpo.targets(cfg, kinds=[self.kind] if self.kind else None, dataset=self.dataset or None)
        if not items:
            raise ConfigError(
                f"{self.task_id}: no configured dataset matches kind={self.kind!r} dataset={self.dataset!r}"
            )
        if self.max_age is not None:
            items = [rpo.Target(t.kind, t.dataset, self.max_age.total_seconds()) for t in items]
        return {
            "aws_conn_id": cfg.connections.aws,
            "bucket": cfg.storage.backup_bucket,
            "catalog_prefix": cfg.storage.catalog_prefix,
            "datasets": [t.to_list() for t in items],
        }
