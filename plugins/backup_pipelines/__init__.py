"""backup-pipelines: Airflow 3 DAGs for the batch tiers of the backup and recovery design (ADR-16).

Kept free of Airflow imports: importing Airflow reads its settings, and the embedded stack and the
tests must set those first.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The checkout (editable install): DAGs, include/sql and include/config live beside plugins/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
