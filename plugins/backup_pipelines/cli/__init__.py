"""``backup-pipelines``: the console script for operators who need the catalog without Airflow.

It reads the same config file (``--config`` or ``BACKUP_PIPELINES_CONFIG``) and the same Airflow
connections (``AIRFLOW_CONN_*`` variables or the configured secrets backend) as the DAGs.
"""
