"""Checksums as S3 computes them: SHA-256 (hex in the catalog, base64 in S3), composites, ETags."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path

HASH_CHUNK = 8 * 1024 * 1024


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a local file, read ``HASH_CHUNK`` bytes at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a multipart object: MD5 of the concatenated part MD5s, then ``-<parts>``."""
    digests = b"".join(binascii.unhexlify(e.strip('"')) for e in part_etags)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(part_etags)}"'  # noqa: S324 - S3's ETag format


def composite_sha256(part_checksums: list[str]) -> str:
    """S3's composite checksum of a multipart object from its parts' base64 SHA-256s."""
    digest = hashlib.sha256(b"".join(base64.b64decode(c) for c in part_checksums)).digest()
    return f"{base64.b64encode(digest).decode()}-{len(part_checksums)}"


def composite_sha256_of_file(path: str, part_size: int, *, read_size: int = HASH_CHUNK) -> str:
    """The composite checksum S3 gives ``path`` uploaded in parts of ``part_size`` bytes (read
    ``read_size`` bytes at a time: a part is not held in memory)."""
    parts: list[str] = []
    with open(path, "rb") as handle:
        while True:
            digest = hashlib.sha256()
            left = part_size
            while left and (chunk := handle.read(min(read_size, left))):
                digest.update(chunk)
                left -= len(chunk)
            if left == part_size:
                break
            parts.append(base64.b64encode(digest.digest()).decode())
    return composite_sha256(parts)


def parts_of(etag: str) -> int:
    """How many parts the object with this ETag was uploaded in (1: a single PUT)."""
    match = re.search(r"-(\d+)\"?$", etag)
    return int(match.group(1)) if match else 1
