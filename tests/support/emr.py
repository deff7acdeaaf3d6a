"""A day of EMR output unlike the demo's (odd keys, empty and binary objects), and S3 request counts."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from typing import Any

ODD_NAMES = [
    "country=Côte d'Ivoire/part-00000.snappy.parquet",
    "日本語/売上 データ.parquet",
    "emoji 🚀/part-1",
    "a=1/b=2/part+1 ~x.parquet",
    "q?x=1&y=2.parquet",
    "percent%20literal%.parquet",
    "equals==.parquet",
    "two  spaces.parquet",
    "tab\tkey",
    "double//slash/trailing space ",
]


def long_name(dest_prefix: str, key_bytes: int) -> str:
    """A relative name whose archive key (``dest_prefix`` + name) is exactly ``key_bytes`` bytes."""
    room = key_bytes - len(dest_prefix.encode())
    name = "é" * (room // 4)  # 2 bytes each: half the room in multi-byte characters
    return name + "x" * (room - len(name.encode()))


def odd_day(dest_prefix: str, *, regular: int = 20, long_key_bytes: int = 1024) -> dict[str, bytes]:
    """Relative name -> bytes: odd keys, a 0-byte object, a 3 MiB file, a key of ``long_key_bytes``
    in the archive, the ``_SUCCESS`` marker and ``regular`` plain part files of random bytes."""
    day = {name: name.encode() * 3 for name in ODD_NAMES}
    day["empty.parquet"] = b""
    day["big.bin"] = os.urandom(3 * 1024 * 1024)
    day[long_name(dest_prefix, long_key_bytes)] = b"long key"
    day["_SUCCESS"] = b""
    for n in range(regular):
        day[f"part-{n:05d}.parquet"] = os.urandom(1024 + n)
    return day


def seed(s3: Any, bucket: str, prefix: str, objects: dict[str, bytes]) -> None:
    for name, body in objects.items():
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Requests:
    """S3 API calls made through one client, by operation (botocore's ``after-call`` event)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        client.meta.events.register("after-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.calls[model.name] += 1

    def take(self) -> Counter[str]:
        """The calls since the last ``take``."""
        with self.lock:
            calls, self.calls = self.calls, Counter()
        return calls
