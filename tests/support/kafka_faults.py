"""A Kafka broker that faults can be done to: frozen, restarted without losing its log, stripped
of its oldest records as retention would, and reached through a TCP proxy whose connections can
be cut.

It is a second Tansu broker beside the session's: its log lives in the embedded moto S3 (Tansu's
S3 store keeps one object per record batch, named by the batch's base offset, and survives a
restart, unlike the in-memory store), and it advertises the proxy's port, so every client
connection, not only the bootstrap one, goes through the proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_pipelines.dev.processes import HOST, Service, free_port, tansu_service
from backup_pipelines.dev.stack import EmbeddedStack

STORE_BUCKET_PREFIX = "tansu-broker-log-"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream port; ``cut`` drops every open connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server((HOST, 0))  # the kernel's free port: no race for it
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                client.close()  # the broker looks down: connection reset right away
                continue
            try:
                upstream = socket.create_connection((HOST, self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the timeout was for connecting; an idle Kafka link is fine
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for sock in (source, sink):
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self, *, down_for: float = 0.0) -> int:
        """Reset every open connection; refuse new ones for ``down_for`` seconds. Returns how many
        connections were cut."""
        self._refuse_until = time.monotonic() + down_for
        with self._lock:
            victims = list(self._open)
        for sock in victims:
            self._close(sock)
        self.cuts += 1
        return len(victims) // 2

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


@dataclass
class FaultyKafka:
    """The broker, its proxy and the faults. ``bootstrap`` is the proxy's address."""

    stack: EmbeddedStack
    base_dir: Path
    broker_port: int = field(default_factory=free_port)
    # A bucket of its own: each broker starts empty, whatever an earlier test's broker left.
    store_bucket: str = field(default_factory=lambda: f"{STORE_BUCKET_PREFIX}{uuid.uuid4().hex[:12]}")
    proxy: TcpProxy | None = None
    service: Service | None = None
    freezes: int = 0
    _thaw_timer: threading.Timer | None = None

    def start(self) -> FaultyKafka:
        self.stack.create_buckets(self.store_bucket)
        self.proxy = TcpProxy(self.broker_port)
        self.service = tansu_service(
            self.broker_port,
            self.base_dir / "tansu-s3.log",
            storage=f"s3://{self.store_bucket}/",
            advertised_port=self.proxy.port,
            name="Tansu Kafka broker (S3 store, behind a proxy)",
        )
        self._start_broker()
        return self

    def _start_broker(self) -> None:
        assert self.service is not None
        env = {
            **os.environ,
            "AWS_ENDPOINT": self.stack.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.service.start(env)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self.proxy is not None:
            self.proxy.close()

    @property
    def bootstrap(self) -> str:
        assert self.proxy is not None
        return f"{HOST}:{self.proxy.port}"

    def connection_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_KAFKA_DEFAULT`` pointing at this broker."""
        return {
            "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
                {"conn_type": "kafka", "extra": {"bootstrap.servers": self.bootstrap}}
            )
        }

    # -- faults --------------------------------------------------------------------------------
    def freeze(self, seconds: float) -> None:
        """SIGSTOP the broker and SIGCONT it ``seconds`` later (from a timer thread): clients see a
        hung peer, as in a network partition."""
        assert self.service is not None and self.service.proc is not None
        os.kill(self.service.proc.pid, signal.SIGSTOP)
        self.freezes += 1
        self._thaw_timer = threading.Timer(seconds, self.thaw)
        self._thaw_timer.start()

    def thaw(self) -> None:
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
        if self.service is not None and self.service.proc is not None and self.service.proc.poll() is None:
            os.kill(self.service.proc.pid, signal.SIGCONT)

    def kill_and_restart(self, down_for: float = 2.0) -> None:
        """SIGKILL the broker, leave it down ``down_for`` seconds, start it again on the same port
        and the same log. Call it from a thread that outlives the broker: the child dies with the
        thread that started it (``PR_SET_PDEATHSIG``). The port stays unbound while the broker is
        down: a risk accepted for a test, as another process taking that random port then is rare."""
        assert self.service is not None and self.service.proc is not None
        os.kill(self.service.proc.pid, signal.SIGKILL)
        self.service.proc.wait(10)
        time.sleep(down_for)
        self._start_broker()

    def batch_offsets(self, topic: str, partition: int) -> list[int]:
        """Base offsets of the record batches the broker holds for a partition, in order."""
        prefix = self._records_prefix(topic, partition)
        s3 = self.stack.s3_client()
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.store_bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        return sorted(int(key.rsplit("/", 1)[1].split(".")[0]) for key in keys)

    def drop_batches_through(self, topic: str, partition: int, offset: int) -> int:
        """Delete, as retention drops old segments, every batch whose base offset is <= ``offset``
        (so ``offset`` itself is gone); returns the new low watermark (the first offset left)."""
        bases = self.batch_offsets(topic, partition)
        doomed = [base for base in bases if base <= offset]
        left = [base for base in bases if base > offset]
        assert doomed and left, f"{topic}[{partition}] batches {bases}: nothing to drop through {offset}"
        s3 = self.stack.s3_client()
        prefix = self._records_prefix(topic, partition)
        for base in doomed:
            s3.delete_object(Bucket=self.store_bucket, Key=f"{prefix}{base:020d}.batch")
        return left[0]

    @staticmethod
    def _records_prefix(topic: str, partition: int) -> str:
        return f"clusters/tansu_cluster/topics/{topic}/partitions/{partition:010d}/records/"


# Producer settings for seeding: batches of 25 records, so retention can drop a few at a time.
SMALL_BATCHES: dict[str, Any] = {"batch.num.messages": 25}
