"""The DR drill's own probes: Tier 1 lags, objects still in S3, reachability, scratch clean-up.

Restores themselves belong to the pipelines (``clickhouse.restore``, ``kafka.replay``, ``core.s3``);
this only does what the drill adds around them, through the provider hooks (clickhouse-connect via
``ClickHouseHook``, ``KafkaAdminClientHook``) and the S3 gateway. It also tells apart an engine
error that says "the data is bad" from one that says "the check could not run".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from backup_pipelines.clickhouse.sql import quote_identifier, render_sql
from backup_pipelines.core.config import SQL_ROOT
from backup_pipelines.core.regions import Source, aws_conn_id

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.manifest import Manifest
    from backup_pipelines.core.presence import MissingObject

log = logging.getLogger(__name__)
SQL_DIR = SQL_ROOT / "dr_drill"

FailureKind = Literal["data", "infrastructure"]
# What the engine says when it could not reach storage or a peer: the check did not run.
_INFRA_MARKERS = re.compile(
    r"NETWORK_ERROR|ALL_CONNECTION_TRIES_FAILED|SOCKET_TIMEOUT|TIMEOUT_EXCEEDED|Connection refused|"
    r"Connection reset|Couldn't connect|Could not resolve|Timeout|timed out|Poco::Exception|"
    r"HTTP response code: (?:403|5\d\d)|AccessDenied|Access Denied|SlowDown|ServiceUnavailable|"
    r"InternalError|MEMORY_LIMIT_EXCEEDED|NOT_ENOUGH_SPACE|TOO_MANY_SIMULTANEOUS_QUERIES|"
    r"still RESTORING after|not in system\.backups",
    re.IGNORECASE,
)
# What it says when the backup itself is bad: a missing or damaged file of the chain.
_DATA_MARKERS = re.compile(
    r"HTTP response code: 404|NoSuchKey|FILE_DOESNT_EXIST|BACKUP_ENTRY_NOT_FOUND|BACKUP_NOT_FOUND|"
    r"CHECKSUM_DOESNT_MATCH|CORRUPTED_DATA|CANNOT_READ_ALL_DATA|UNKNOWN_FORMAT_VERSION|"
    r"BACKUP_DAMAGED|WRONG_BASE_BACKUP|CANNOT_RESTORE_TABLE|INCORRECT_DATA",
    re.IGNORECASE,
)


def engine_message(exc: BaseException, limit: int = 400) -> str:
    """The first line of an engine error, without ClickHouse's stack trace."""
    text = str(exc).split(", Stack trace", 1)[0].split("Stack trace (when", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify_engine_failure(message: str) -> FailureKind | None:
    """``infrastructure`` when the message says storage/engine was unreachable, ``data`` when it
    names a missing or damaged file, None when it says neither (the caller probes to decide)."""
    if _INFRA_MARKERS.search(message):
        return "infrastructure"
    if _DATA_MARKERS.search(message):
        return "data"
    return None


def download_failure(exc: BaseException, thaw_error: str | None = None) -> tuple[FailureKind, str]:
    """Why an archived object could not be read: gone (``data``) or S3/thaw trouble (``infrastructure``)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            return "data", "the object is missing from the archive"
        if code == "InvalidObjectState":
            why = f": {thaw_error}" if thaw_error else ""
            return "infrastructure", f"the object is still not readable (its restore did not complete{why})"
    return "infrastructure", f"could not read the object: {engine_message(exc)}"


@dataclass(frozen=True)
class ReplicaLag:
    database: str
    table: str
    delay_seconds: float


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    primary_end: int
    dr_end: int | None

    @property
    def lag(self) -> int | None:
        return None if self.dr_end is None else max(self.primary_end - self.dr_end, 0)


class DrillProbes:
    """Connections come from the config; nothing is opened until a method needs it."""

    def __init__(
        self,
        *,
        clickhouse_conn_id: str = "clickhouse_default",
        kafka_conn_id: str = "kafka_default",
        aws_conn_id: str = "aws_default",
    ) -> None:
        self.clickhouse_conn_id = clickhouse_conn_id
        self.kafka_conn_id = kafka_conn_id
        self.aws_conn_id = aws_conn_id

    @classmethod
    def from_config(cls, cfg: BackupConfig, *, source: Source = "primary") -> DrillProbes:
        return cls(
            clickhouse_conn_id=cfg.connections.clickhouse,
            kafka_conn_id=cfg.connections.kafka,
            aws_conn_id=aws_conn_id(cfg, source),
        )

    # -- ClickHouse -------------------------------------------------------------------------------
    def _clickhouse(self) -> Any:
        from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

        return ClickHouseHook(clickhouse_conn_id=self.clickhouse_conn_id).get_client()

    def replica_lags(self) -> list[ReplicaLag]:
        """``system.replicas.absolute_delay`` of every replicated table; empty without replicas."""
        result = self._clickhouse().query((SQL_DIR / "replica_lag.sql").read_text())
        return [ReplicaLag(str(db), str(table), float(delay)) for db, table, delay in result.result_rows]

    def scratch_databases(self, prefix: str) -> list[str]:
        result = self._clickhouse().query(
            (SQL_DIR / "scratch_databases.sql").read_text(), parameters={"prefix": prefix}
        )
        return [str(row[0]) for row in result.result_rows]

    def drop_database(self, database: str) -> None:
        self._clickhouse().command(
            render_sql("drop_database.sql", database=quote_identifier(database), on_cluster="")
        )
        log.info("dropped scratch database %s", database)

    def drop_database_quietly(self, database: str) -> None:
        """Drop right after the checks; failures are logged (the teardown task tries again)."""
        try:
            self.drop_database(database)
        except Exception as exc:
            log.warning(
                "could not drop scratch database %s now (the clean-up task retries): %s", database, exc
            )

    def drop_databases(self, databases: list[str]) -> None:
        for database in databases:
            self.drop_database(database)

    def clickhouse_problem(self) -> str | None:
        """None when ClickHouse answers ``SELECT 1``, else why not (the probe after a failed restore)."""
        try:
            self._clickhouse().query("SELECT 1")
        except Exception as exc:
            return f"ClickHouse connection {self.clickhouse_conn_id!r} does not answer: {engine_message(exc)}"
        return None

    # -- S3: chain members -------------------------------------------------------------------------
    def _s3(self) -> Any:
        from backup_pipelines.core.s3 import BackupS3Hook

        return BackupS3Hook(aws_conn_id=self.aws_conn_id)

    def missing_objects(self, chain: Sequence[Manifest]) -> list[MissingObject]:
        """Objects the manifests of ``chain`` record that S3 no longer holds as recorded (gone,
        resized or replaced): ``core.presence``, one listing across the chain's folders. Network or permission
        errors raise: they mean the check could not run, not that data is missing."""
        from backup_pipelines.core.presence import Presence

        return Presence(self._s3()).missing(chain)

    def storage_problem(self, chain: Sequence[Manifest]) -> str | None:
        """None when the backup bucket answers for every chain member, else why not."""
        from backup_pipelines.core.s3 import split_s3_url

        try:
            client = self._s3().client
            for bucket in sorted({split_s3_url(m.location)[0] for m in chain}):
                client.head_bucket(Bucket=bucket)
        except Exception as exc:
            return f"S3 through connection {self.aws_conn_id!r} does not answer: {engine_message(exc)}"
        return None

    # -- Kafka -----------------------------------------------------------------------------------
    def _kafka_admin(self, conn_id: str) -> Any:
        from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

        return KafkaAdminClientHook(kafka_config_id=conn_id).get_conn

    def topics(self, prefix: str = "", conn_id: str | None = None) -> list[str]:
        admin = self._kafka_admin(conn_id or self.kafka_conn_id)
        return sorted(t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix))

    def delete_topics(self, names: list[str]) -> None:
        if not names:
            return
        admin = self._kafka_admin(self.kafka_conn_id)
        for topic, future in admin.delete_topics(names, operation_timeout=30).items():
            future.result(timeout=60)
            log.info("deleted scratch topic %s", topic)

    def end_offsets(self, conn_id: str, topics: list[str]) -> dict[tuple[str, int], int]:
        """The log-end offset of every partition of ``topics`` on one cluster (missing topics left out)."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        admin = self._kafka_admin(conn_id)
        metadata = admin.list_topics(timeout=30)
        request = {
            TopicPartition(topic, partition): OffsetSpec.latest()
            for topic in topics
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        }
        if not request:
            return {}
        return {
            (tp.topic, tp.partition): int(future.result(timeout=60).offset)
            for tp, future in admin.list_offsets(request, request_timeout=60).items()
        }

    def replication_lags(self, dr_conn_id: str, topics: list[str]) -> list[PartitionLag]:
        """Per partition: log-end offset on the primary minus on the DR cluster (mirror lag)."""
        primary = self.end_offsets(self.kafka_conn_id, topics)
        dr = self.end_offsets(dr_conn_id, topics)
        return [
            PartitionLag(topic, partition, end, dr.get((topic, partition)))
            for (topic, partition), end in sorted(primary.items())
        ]


def set_run_note(*, api_conn_id: str, dag_id: str, run_id: str, note: str) -> None:
    """Put ``note`` on a DAG run through Airflow's public REST API (``PATCH .../dagRuns/{run}``).

    Tasks cannot write the metadata DB in Airflow 3, so the note goes through the API server: the
    connection's host is its base URL, login/password get a token from ``/auth/token``.
    """
    from urllib.parse import quote

    import httpx
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(api_conn_id)
    base = (conn.host or "").rstrip("/")
    if conn.port and base.count(":") < 2:
        base = f"{base}:{conn.port}"
    if not base.startswith("http"):
        base = f"{conn.schema or 'http'}://{base}"
    with httpx.Client(base_url=base, timeout=30) as client:
        headers = {}
        if conn.login:
            token = client.post("/auth/token", json={"username": conn.login, "password": conn.password})
            token.raise_for_status()
            headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        response = client.patch(
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
            params={"update_mask": "note"},
            json={"note": note},
            headers=headers,
        )
        response.raise_for_status()
