"""Every DAG with a form refuses params it does not know (issue 28.2).

Airflow accepts any key in a run's ``conf`` (the form's JSON editor, the REST API, ``airflow dags
trigger --conf``) and its own param validation checks only the declared fields. So each DAG's
form's fields are keys of its ``RunParams`` model, and the task that reads the params (the first
with a side effect) refuses any other key with one line naming it and the keys the DAG takes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from backup_pipelines.core.errors import ParamError


def _models() -> dict[str, Any]:
    from backup_pipelines.clickhouse.params import RestoreParams, SnapshotRunParams
    from backup_pipelines.drill.params import DrillParams
    from backup_pipelines.export.params import ExportParams
    from backup_pipelines.kafka.params import ReplayParams

    return {
        "clickhouse_restore": RestoreParams,
        "clickhouse_hourly_snapshot": SnapshotRunParams,
        "dr_drill": DrillParams,
        "monthly_deep_archive_export": ExportParams,
        "kafka_archive_replay": ReplayParams,
    }


MISSPELT = {
    "clickhouse_restore": "target_tme",
    "clickhouse_hourly_snapshot": "retention_dryrun",
    "dr_drill": "picks",
    "monthly_deep_archive_export": "months",
    "kafka_archive_replay": "target_db",
}


@pytest.mark.parametrize("dag_id", sorted(MISSPELT))
def test_every_form_field_is_a_key_the_task_takes(dagbag: Any, dag_id: str) -> None:
    assert set(dagbag.dags[dag_id].params) <= set(_models()[dag_id].model_fields)


@pytest.mark.parametrize("dag_id", sorted(MISSPELT))
def test_an_unknown_key_in_conf_fails_naming_it_and_the_known_ones(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    key = MISSPELT[dag_id]
    conf = {key: "2000-01-01T00:00:00Z"}
    # What Airflow's task runner does with the conf (the same function): the declared params
    # validate, and the extra key is carried along, not refused.
    from airflow.sdk.definitions.param import process_params

    params = process_params(dag, dag.tasks[0], conf, suppress_exception=False)
    assert params[key] == conf[key]
    context = {"params": params, "dag_run": SimpleNamespace(conf=conf, dag_id=dag_id)}
    with pytest.raises(ParamError) as err:
        _models()[dag_id].from_context(context)
    known = ", ".join(sorted(_models()[dag_id].model_fields))
    assert str(err.value) == f"unknown param(s) {key!r}; {dag_id} takes: {known}"
