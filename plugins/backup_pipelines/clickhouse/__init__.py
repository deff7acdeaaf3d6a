"""Hourly ClickHouse snapshots: native BACKUP to S3 in chains, verification, retention, restores.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations
