"""The benchmarks' S3: one moto server on a free port (``dev.stack.moto_service``, the embedded
stack's), reachable through the Airflow connection ``aws_bench``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def moto_s3() -> Iterator[str]:
    """A running moto server's endpoint URL; local credentials and ``aws_bench`` in the environment.
    The server is stopped on the way out (given time: one holding 100,000s of objects is slow)."""
    from backup_pipelines.dev.processes import HOST, free_port
    from backup_pipelines.dev.stack import moto_service

    port = free_port()
    service = moto_service(port, Path(tempfile.mkdtemp(prefix="bench-moto-")) / "moto.log")
    service.start()
    endpoint = f"http://{HOST}:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AIRFLOW_CONN_AWS_BENCH": json.dumps({"conn_type": "aws", "extra": {"endpoint_url": endpoint}}),
        }
    )
    try:
        yield endpoint
    finally:
        service.stop(timeout=60)
