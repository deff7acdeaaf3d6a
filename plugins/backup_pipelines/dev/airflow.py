"""Airflow on the embedded stack: its environment, in-process runs for the demo and the tests,
and ``make airflow`` (``airflow standalone`` on the stack)."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from backup_pipelines.dev.processes import HOST, die_with_parent, signals_raise, stop_group
from backup_pipelines.dev.stack import EmbeddedStack


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


# -- the SMTP sink process -------------------------------------------------------------------------


def run_airflow(args: argparse.Namespace) -> int:
    from backup_pipelines.core.config import load_config

    base = Path(args.dir)
    with signals_raise(), EmbeddedStack(base) as stack:
        cfg = load_config()
        stack.create_buckets(cfg.storage.backup_bucket, cfg.storage.archive_bucket)
        env = {**os.environ, **stack.env(), **airflow_env(base / "airflow")}
        env["AIRFLOW__API__PORT"] = str(args.port)
        # airflow standalone starts its components as `airflow ...` from PATH: the venv's first.
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        airflow = str(Path(bin_dir) / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True)
        # chDB opens its directory in one process at a time: ClickHouse tasks share one slot.
        subprocess.run(
            [airflow, "pools", "set", cfg.clickhouse_snapshots.pool, "1", "chDB: one process at a time"],
            env=env,
            check=True,
        )
        print(f"Airflow UI on http://{HOST}:{args.port} (user and password printed by airflow standalone)")
        # Its own process group: standalone's scheduler, dag-processor and triggerer are in it too,
        # and do not stop with standalone, so the whole group is torn down on the way out.
        standalone = subprocess.Popen(
            [airflow, "standalone"],
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only
        )
        try:
            with contextlib.suppress(KeyboardInterrupt):
                standalone.wait()
        finally:
            stop_group(standalone)
    return 0
