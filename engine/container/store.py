"""The containers table: the only module that runs SQL on it.

A row is a container's record (record.py) as JSON through engine/wire.py,
with the name in its own UNIQUE column so two containers can never hold one
name. Methods join the caller's transaction when there is one (MetaStore
transactions nest), so a create can store the record and the network's
endpoint rows atomically.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from engine import wire
from engine.container.record import ContainerID, ContainerRecord
from engine.errors import Conflict, InvalidParameter, no_such_container
from engine.store.db import MetaStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL              -- JSON record (config, host config, state)
);
"""


def _record(data: str) -> ContainerRecord:
    return wire.decode(ContainerRecord, json.loads(data))


def _shared_strings(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with its keys and strings (also those in arrays) interned."""
    intern = sys.intern
    return {intern(k): intern(v) if isinstance(v, str) else
            [intern(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v for k, v in pairs}


_SHARING = json.JSONDecoder(object_pairs_hook=_shared_strings)


def _kept_record(data: str) -> ContainerRecord:
    """A record to keep (snapshot's): the strings many containers share (image, command, environment,
    options) are held once, a busybox container's record taking 3 KiB instead of 7 (decoding takes a third
    longer, once per changed row)."""
    return wire.decode(ContainerRecord, _SHARING.decode(data))


def _data(c: ContainerRecord) -> str:
    return json.dumps(wire.encode(c))


def name_in_use(name: str, holder: str) -> Conflict:
    return Conflict(f'Conflict. The container name "{name}" is already in use by container "{holder}". '
                    "You have to remove (or rename) that container to be able to reuse that name.")


class ContainerStore:
    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        meta.ensure_schema(SCHEMA)
        # snapshot()'s decoded records with the length and hash of the row text each was decoded from (not
        # the text: it was a third of the daemon's memory per container)
        self._decoded: dict[str, tuple[tuple[int, int], ContainerRecord]] = {}

    def load(self, cid: ContainerID) -> ContainerRecord:
        c = self.find(cid)
        if c is None:
            raise no_such_container(cid)
        return c

    def find(self, cid: ContainerID) -> ContainerRecord | None:
        """The record, or None once it is removed (for work that may race a removal)."""
        row = self.meta.query_one("SELECT data FROM containers WHERE id=?", (cid,))
        return None if row is None else _record(row["data"])

    def save(self, c: ContainerRecord, durable: bool = True) -> None:
        """Write `c`'s record; not `durable`: without waiting for the disk (MetaStore.transaction)."""
        with self.meta.transaction(durable) as db:
            db.execute("UPDATE containers SET data=?, name=? WHERE id=?", (_data(c), c.name, c.id))

    def insert(self, c: ContainerRecord) -> None:
        """Store a new record; its name must be free."""
        with self.meta.transaction() as db:
            self._check_free(c.name)
            db.execute("INSERT INTO containers(id, name, data) VALUES (?,?,?)", (c.id, c.name, _data(c)))

    def rename(self, c: ContainerRecord, name: str) -> None:
        """Give `c` the free name `name` (the record is updated too)."""
        with self.meta.transaction():
            self._check_free(name)
            c.name = name
            self.save(c)

    def delete(self, cid: ContainerID) -> None:
        with self.meta.transaction() as db:
            db.execute("DELETE FROM containers WHERE id=?", (cid,))

    def _holder(self, name: str) -> ContainerID | None:
        """The container named `name` ("/"-prefixed), None if the name is free."""
        row = self.meta.query_one("SELECT id FROM containers WHERE name=?", (name,))
        return ContainerID(row["id"]) if row else None

    def _check_free(self, name: str) -> None:
        holder = self._holder(name)
        if holder:
            raise name_in_use(name, holder)

    def name_taken(self, name: str) -> bool:
        return self._holder(name) is not None

    def ids(self) -> set[ContainerID]:
        return {ContainerID(r["id"]) for r in self.meta.query("SELECT id FROM containers")}

    def records(self) -> list[ContainerRecord]:
        """Every record, each a private copy the caller may change and save."""
        return [_record(r["data"]) for r in self.meta.query("SELECT data FROM containers")]

    def snapshot(self) -> list[ContainerRecord]:
        """Every record as stored now, to read and never change (`docker ps`): a row unchanged since the last
        snapshot gives the record decoded then, since decoding was most of a long listing's time. The rows
        are still read each time, so the database stays the only truth, whoever wrote it."""
        decoded: dict[str, tuple[tuple[int, int], ContainerRecord]] = {}
        for r in self.meta.query("SELECT id, data FROM containers"):
            text = r["data"]
            key = (len(text), hash(text))  # a changed row with an equal 64-bit hash and length: ~2**-64
            hit = self._decoded.get(r["id"])
            decoded[r["id"]] = hit if hit is not None and hit[0] == key else (key, _kept_record(text))
        self._decoded = decoded  # one assignment: a concurrent snapshot sees the old or the new map
        return [c for _, c in decoded.values()]

    def resolve(self, ref: str) -> ContainerID:
        """Container ID for a full ID, a name, or a unique ID prefix (Docker's lookup order)."""
        if not ref or len(ref) > 300:
            raise no_such_container(ref[:300])
        row = self.meta.query_one("SELECT id FROM containers WHERE id=?", (ref,))
        if row:
            return ContainerID(row["id"])
        holder = self._holder(ref if ref.startswith("/") else "/" + ref)
        if holder:
            return holder
        if all(c in "0123456789abcdef" for c in ref):
            rows = self.meta.query("SELECT id FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) == 1:
                return ContainerID(rows[0]["id"])
            if len(rows) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)
