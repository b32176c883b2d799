"""Where each layer's compressed blob is known to live: the `layer_blobs` table, and only this module runs SQL on it.

Pull records the blob a layer came from and push the one it uploaded, so a
later push of the same layer is a HEAD ("Layer already exists") or a
cross-repository mount instead of an upload.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.store.db import MetaStore

BLOB_LOCATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id TEXT NOT NULL,          -- uncompressed layer digest
    blob_digest TEXT NOT NULL,      -- compressed blob as stored in a registry
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    repository TEXT NOT NULL,       -- registry host/path the blob is known to exist in
    PRIMARY KEY (diff_id, blob_digest, repository)
);
"""


@dataclass(frozen=True)
class BlobLocation:
    blob_digest: str
    media_type: str
    size: int
    repository: str  # registry host/path


class BlobLocations:
    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        meta.ensure_schema(BLOB_LOCATION_SCHEMA)

    def remember(self, diff_id: str, location: BlobLocation) -> None:
        with self.meta.transaction() as db:
            db.execute("INSERT OR IGNORE INTO layer_blobs(diff_id, blob_digest, media_type, size, repository) "
                       "VALUES (?,?,?,?,?)", (diff_id, location.blob_digest, location.media_type,
                                              location.size, location.repository))

    def known(self, diff_id: str, media_types: Iterable[str]) -> list[BlobLocation]:
        """Every place a blob of this layer in one of `media_types` was seen."""
        types = tuple(media_types)
        rows = self.meta.query("SELECT blob_digest, media_type, size, repository FROM layer_blobs "
                               f"WHERE diff_id=? AND media_type IN ({','.join('?' * len(types))})",
                               (diff_id, *types))
        return [BlobLocation(r["blob_digest"], r["media_type"], r["size"], r["repository"]) for r in rows]
