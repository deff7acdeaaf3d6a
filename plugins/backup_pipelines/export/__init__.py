"""Monthly exports to S3 Deep Archive: ClickHouse writes Parquet, the worker reconciles and files it.

See docs/architecture.md for where it sits and what it may import.
"""

from __future__ import annotations
