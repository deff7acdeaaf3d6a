"""Two regions on the embedded stack, and an outage of the primary one.

The DR region is the stack's second moto server (``aws_dr``). For an outage, the primary's S3 is
reached through a TCP proxy: ``down()`` resets every open connection and refuses new ones (what a
client sees when a region's endpoint is gone), ``up()`` lets connections through again. The moto
server behind it keeps its data, as a region's S3 does after an outage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backup_pipelines.dev.stack import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, REGION, EmbeddedStack
from support.kafka_faults import TcpProxy

#: Fail fast while a region is down: one attempt, a one-second connect timeout.
FAST_FAIL = {"retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 1, "read_timeout": 5}


class PrimaryOutage:
    """The primary region's S3 behind a proxy that can be taken down and brought back."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.proxy = TcpProxy(stack.services["s3"].port)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def connection_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_AWS_DEFAULT`` through the proxy, failing fast."""
        conn = {
            "conn_type": "aws",
            "login": LOCAL_ACCESS_KEY,
            "password": LOCAL_SECRET_KEY,
            "extra": {"endpoint_url": self.endpoint, "region_name": REGION, "config_kwargs": FAST_FAIL},
        }
        return {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn)}

    def down(self) -> None:
        self.proxy.cut(down_for=24 * 3600)

    def up(self) -> None:
        self.proxy._refuse_until = 0.0  # the proxy's own switch: connections go through again

    def close(self) -> None:
        self.proxy.close()


@contextmanager
def primary_behind_proxy(stack: EmbeddedStack) -> Iterator[PrimaryOutage]:
    """The primary's AWS connection through an outage proxy for the block's duration."""
    outage = PrimaryOutage(stack)
    saved = {k: os.environ.get(k) for k in outage.connection_env()}
    os.environ.update(outage.connection_env())
    try:
        yield outage
    finally:
        outage.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dr_objects(stack: EmbeddedStack, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    client = stack.s3_client("dr")
    return [
        obj
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
