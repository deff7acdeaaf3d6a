"""Airflow on the embedded stack: its environment and in-process runs for the demo and the tests
(``make airflow`` is ``dev.launcher``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def airflow_env(
    home: Path, *, dags_folder: Path | None = None, sql_alchemy_conn: str | None = None
) -> dict[str, str]:
    """Environment for an Airflow that runs this package's DAGs with no examples and a local DB."""
    from backup_pipelines import PROJECT_ROOT

    home = Path(home).resolve()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }


def run_dag_in_process(dag: Any, **test_kwargs: Any) -> Any:
    """``dag.test()`` for the demo and the tests, with the DAG's deadline alerts left off.

    Airflow 3.3's ``dag.test()`` builds its scheduler-side DAG straight from serialization, so
    ``dag.deadline`` holds alert definitions where ``DagRun.update_state`` expects the ids the
    dag-processor stores, and a successful run crashes at the end. Deadlines are proven by the
    scheduler-level test instead (tests/e2e/test_scheduler_deadlines.py).
    """
    saved = dag.deadline
    dag.deadline = None
    try:
        return dag.test(**test_kwargs)
    finally:
        dag.deadline = saved
