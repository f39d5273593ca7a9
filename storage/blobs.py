"""Blob storage behind one interface: a local folder now, an S3-compatible store later."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

# Keys are relative paths of plain segments: no "..", no leading dot or slash, no backslash,
# so a key can never name a file outside the store's folder.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}){0,7}$")
READ_CHUNK = 256 * 1024
# Temp files older than this at start-up belong to uploads that died with their process.
STALE_TEMP_S = 3600


class BlobTooLarge(Exception):
    """The stream passed the size limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


class BlobNotFound(Exception):
    """No blob under this key."""


@dataclass(frozen=True)
class BlobInfo:
    """What a put stored: the byte count and the SHA-256 of the content."""

    key: str
    size: int
    sha256: str


class BlobReader(Protocol):
    """An opened blob: its size and its bytes in chunks."""

    size: int

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class BlobStore(Protocol):
    """Where media originals and renditions live, addressed by key."""

    async def put(self, key: str, stream: AsyncIterable[bytes], max_bytes: int) -> BlobInfo:
        """Store the stream under key, all or nothing; BlobTooLarge past max_bytes."""
        ...

    async def open(self, key: str) -> BlobReader:
        """Open a blob for reading; BlobNotFound if there is none."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove a blob; False if there was none."""
        ...

    async def exists(self, key: str) -> bool: ...

    def local_path(self, key: str) -> Path | None:
        """The file behind a key when the store is a local folder (served with sendfile), else None."""
        ...


def check_key(key: str) -> str:
    """The key if it is safe to use as a relative path; ValueError otherwise."""
    if not KEY_PATTERN.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"bad blob key {key!r}")
    return key


class _LocalReader:
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(self._handle.read, READ_CHUNK):
            yield chunk

    async def close(self) -> None:
        await asyncio.to_thread(self._handle.close)


class LocalBlobStore:
    """Blobs as files under one folder; writes go to a temp file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"

    async def open_store(self) -> None:
        """Create the folders and drop temp files left by uploads that died mid-way."""
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_S
        for entry in self._tmp.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
            except FileNotFoundError:
                pass  # another process cleaned it first

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def put(self, key: str, stream: AsyncIterable[bytes], max_bytes: int) -> BlobInfo:
        final = self._path(key)
        # Unique per call, so concurrent puts never share a temp file.
        temp = self._tmp / f"{secrets.token_hex(12)}.part"
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(_open_for_write, temp)
        try:
            try:
                async for chunk in stream:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(_flush_and_sync, handle)
            finally:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(_move_into_place, temp, final)
        except BaseException:
            # Cancelled, disconnected, too large or disk full: no partial blob is left.
            await asyncio.to_thread(temp.unlink, True)
            raise
        return BlobInfo(key=key, size=size, sha256=digest.hexdigest())

    async def open(self, key: str) -> BlobReader:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise BlobNotFound(key) from None
        size = os.fstat(handle.fileno()).st_size
        return _LocalReader(handle, size)

    async def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)


def _open_for_write(path: Path) -> BinaryIO:
    # O_EXCL: a temp name that somehow exists is an error, never a shared file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _move_into_place(temp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, final)
