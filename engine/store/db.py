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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from engine.errors import InvalidParameter
from pydock_common.files import atomic_write, fsync_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


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

    def ensure_schema(self, sql: str) -> None:
        """Create an area's tables if missing: each store area owns its tables and all SQL on them."""
        with self._lock:
            self._db.executescript(sql)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """All-or-nothing block; a nested one is a savepoint, undone alone if it raises.

        A transaction that is not `durable` commits without an fsync: it is as safe from a daemon crash as
        any (the write-ahead log is written at commit), but a power loss before the next durable commit
        (whose fsync takes it along) or the kernel's writeback may undo it. For writes that recovery would
        redo anyway, such as the exit of a container about to be removed.
        """
        with self._lock, self._sync(durable or self._depth > 0):
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

    @contextmanager
    def _sync(self, full: bool) -> Iterator[None]:
        """The connection's sync mode for one outermost transaction (in WAL mode NORMAL skips the commit's
        fsync); a nested one keeps its outer one's."""
        if full:
            yield
            return
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

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
