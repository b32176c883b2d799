"""Metadata (SQLite) and content-addressed blobs.

Crash safety comes from ordering: blobs and layer directories are written
under a temporary name, fsynced and renamed into place *before* the SQLite
transaction that references them commits. A crash therefore leaves at worst
an unreferenced blob, which garbage collection removes, never a row that
points at missing data.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from .errors import InvalidParameter

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- sha256:<config digest>
    config BLOB NOT NULL,           -- raw image config JSON, hashed into id
    parent TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    ref TEXT PRIMARY KEY,           -- normalized repo:tag or repo@digest
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    cache_id TEXT NOT NULL UNIQUE,  -- directory name under layers/
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL              -- JSON record (config, host config, state)
);
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id TEXT NOT NULL,          -- uncompressed layer digest
    blob_digest TEXT NOT NULL,      -- compressed blob as stored in a registry
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    repository TEXT NOT NULL,       -- registry host/path the blob is known to exist in
    PRIMARY KEY (diff_id, blob_digest, repository)
);
CREATE TABLE IF NOT EXISTS build_cache (
    parent_id TEXT NOT NULL,        -- image a build step started from ('' for FROM scratch)
    key TEXT NOT NULL,              -- sha256 of the step: expanded instruction, build args, content hash
    image_id TEXT NOT NULL,         -- the image that step produced
    PRIMARY KEY (parent_id, key)
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,          -- directory name under volumes/
    driver TEXT NOT NULL,
    labels TEXT NOT NULL,           -- JSON object or null
    options TEXT NOT NULL,          -- JSON driver options or null
    created TEXT NOT NULL           -- RFC 3339, as `docker volume inspect` shows it
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL              -- JSON: Docker's network inspect document (+ _device)
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT,                        -- allocated address while the container's network is up, else NULL
    data TEXT NOT NULL,             -- JSON: aliases, requested address, endpoint id, MAC, container name
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE TABLE IF NOT EXISTS sandboxes (
    container_id TEXT PRIMARY KEY,  -- a container whose network namespace exists
    data TEXT NOT NULL              -- JSON: netns path, published port rules
);
"""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write-temp, fsync, rename: readers see the old or the new file, never half."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_digest(digest: str) -> str:
    """Return the hex part of a sha256 digest, refusing anything path-like."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidParameter(f"invalid digest: {digest[:100]!r}")
    return hexpart


class BlobStore:
    """sha256-addressed immutable files (configs, layer tars, manifests)."""

    def __init__(self, root: str, tmp_dir: str) -> None:
        self.root = root
        self.tmp_dir = tmp_dir

    def path(self, digest: str) -> str:
        return os.path.join(self.root, check_digest(digest))

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def put_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            atomic_write(self.path(digest), data, 0o644)
        return digest

    def read(self, digest: str) -> bytes:
        with open(self.path(digest), "rb") as f:
            return f.read()

    def open(self, digest: str) -> IO[bytes]:
        return open(self.path(digest), "rb")

    def adopt(self, tmp_path: str, digest: str) -> None:
        """Move an already-hashed temp file into place under its digest."""
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, self.path(digest))
        fsync_dir(self.root)

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def digests(self) -> list[str]:
        return ["sha256:" + n for n in os.listdir(self.root) if not n.startswith(".")]


class MetaStore:
    """One SQLite connection guarded by a lock.

    SQLite serialises writers anyway; one connection with a re-entrant lock
    keeps multi-statement transactions atomic across the executor threads
    without per-thread connection bookkeeping.
    """

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing block; a nested one is a savepoint, undone alone if it raises."""
        with self._lock:
            depth = self._depth
            begin, commit, undo = (("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK") if depth == 0 else
                                   (f"SAVEPOINT sp{depth}", f"RELEASE sp{depth}", f"ROLLBACK TO sp{depth}"))
            self._db.execute(begin)
            self._depth += 1
            try:
                yield self._db
                self._db.execute(commit)
            except BaseException:
                self._db.execute(undo)
                if depth:
                    self._db.execute(commit)  # ROLLBACK TO keeps the savepoint open
                raise
            finally:
                self._depth -= 1

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def query_one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def get_kv(self, key: str, default: Any = None) -> Any:
        row = self.query_one("SELECT value FROM kv WHERE key=?", (key,))
        return json.loads(row["value"]) if row else default

    def set_kv(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        with self._lock:
            self._db.close()
