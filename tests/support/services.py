"""Databases and Redis key spaces of one test, on the session's Postgres and Redis (tests/conftest.py).

The servers are the ones named by ``BACKUP_PIPELINES_POSTGRES`` / ``BACKUP_PIPELINES_REDIS`` when set,
else started from PyPI wheels for the session (``backup_pipelines.dev.services``). On a shared server,
names carry the pytest pid: what a killed run (SIGKILL: no ``finally``) left behind is recognisable by
its dead pid and swept by the next run, while a concurrent run's live resources are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator

from backup_pipelines.dev.services import Postgres, Redis

_NAME_PID = re.compile(r"^bp_\w+?_(\d+)_[0-9a-f]+")


def unique_name(prefix: str) -> str:
    return f"bp_{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


def left_by_dead_run(name: str) -> bool:
    match = _NAME_PID.match(name)
    if not match:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextlib.contextmanager
def fresh_database(postgres: Postgres, prefix: str) -> Iterator[tuple[str, str]]:
    """A new database for one test, dropped afterwards: (name, SQLAlchemy URL for Airflow)."""
    for stale in postgres.databases(f"bp\\_{prefix}\\_%"):
        if left_by_dead_run(stale):
            postgres.drop_database(stale)
    name = unique_name(prefix)
    url = postgres.create_database(name)
    try:
        yield name, url
    finally:
        postgres.drop_database(name)


@contextlib.contextmanager
def redis_keyspace(server: Redis, prefix: str) -> Iterator[tuple[str, str]]:
    """A random Redis database index and a key prefix of this test's own: (URL, key prefix)."""
    import redis

    for db in range(1, 16):
        other = redis.Redis.from_url(server.db_url(db))
        stale = [k for k in other.scan_iter(match=f"bp_{prefix}_*") if left_by_dead_run(k.decode())]
        if stale:
            other.delete(*stale)
    index = secrets.randbelow(15) + 1
    key_prefix = unique_name(prefix) + "_"
    try:
        yield server.db_url(index), key_prefix
    finally:
        client = redis.Redis.from_url(server.db_url(index))
        keys = list(client.scan_iter(match=f"{key_prefix}*"))
        if keys:
            client.delete(*keys)
