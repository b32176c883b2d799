"""The image store: the `images` and `tags` tables, and only this module runs SQL on them.

moby's image/store.go model: the store keeps image configs by ID and the
references pointing at them; the service (service.py) builds the operations
(rmi, prune, import, the API views) on top of it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.ids import ImageID
from engine.store.db import MetaStore

IMAGE_SCHEMA = """
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
"""


@dataclass(frozen=True)
class ImageRecord:
    """One stored image. `raw_config` is byte-exact: its sha256 is `id`."""
    id: ImageID
    raw_config: bytes
    parent: str      # the image this one was built or committed from, "" if none
    created: int     # unix seconds, from the config's `created`
    size: int        # bytes of all its layers

    def config(self) -> dict[str, Any]:
        return json.loads(self.raw_config)


def _record(row: Any) -> ImageRecord:
    return ImageRecord(ImageID(row["id"]), bytes(row["config"]), row["parent"], row["created"], row["size"])


class ImageStore:
    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        meta.ensure_schema(IMAGE_SCHEMA)

    # ---- images -------------------------------------------------------
    def add(self, record: ImageRecord) -> None:
        """Store an image; storing the same ID again keeps the first (same content by definition)."""
        with self.meta.transaction() as db:
            db.execute("INSERT OR IGNORE INTO images(id, config, parent, created, size) VALUES (?,?,?,?,?)",
                       (record.id, record.raw_config, record.parent, record.created, record.size))

    def get(self, image_id: str) -> ImageRecord | None:
        row = self.meta.query_one("SELECT * FROM images WHERE id=?", (image_id,))
        return _record(row) if row else None

    def records(self) -> list[ImageRecord]:
        """Every image, newest first (the order `docker images` shows)."""
        return [_record(r) for r in self.meta.query(
            "SELECT id, config, parent, created, size FROM images ORDER BY created DESC, id")]

    def ids(self) -> list[ImageID]:
        return [ImageID(r["id"]) for r in self.meta.query("SELECT id FROM images")]

    def ids_with_prefix(self, hexprefix: str) -> list[ImageID]:
        """IDs starting with `sha256:<hexprefix>`: a short ID is unambiguous when exactly one matches."""
        return [ImageID(r["id"]) for r in self.meta.query("SELECT id FROM images WHERE id LIKE ?",
                                                           (f"sha256:{hexprefix}%",))]

    def has_children(self, image_id: str) -> bool:
        """Whether another image names `image_id` as its parent (such an image cannot be deleted)."""
        return self.meta.query_one("SELECT 1 FROM images WHERE parent=?", (image_id,)) is not None

    def delete(self, image_id: str) -> None:
        """Drop the image and every reference to it."""
        with self.meta.transaction() as db:
            db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM images WHERE id=?", (image_id,))

    # ---- references ---------------------------------------------------
    def set_tag(self, norm_ref: str, image_id: str) -> None:
        """Point the normalized reference (repo:tag or repo@digest) at `image_id`, replacing its old target."""
        with self.meta.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)", (norm_ref, image_id))

    def set_tags(self, norm_refs: list[str], image_id: str) -> dict[str, ImageID | None]:
        """Point every reference at `image_id` in one transaction; returns what each pointed at before."""
        with self.meta.transaction() as db:
            before = {ref: self.tagged_image(ref) for ref in norm_refs}
            for ref in norm_refs:
                db.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)", (ref, image_id))
        return before

    def untag(self, norm_ref: str) -> None:
        with self.meta.transaction() as db:
            db.execute("DELETE FROM tags WHERE ref=?", (norm_ref,))

    def tagged_image(self, norm_ref: str) -> ImageID | None:
        row = self.meta.query_one("SELECT image_id FROM tags WHERE ref=?", (norm_ref,))
        return ImageID(row["image_id"]) if row else None

    def refs_of(self, image_id: str) -> list[str]:
        """Normalized references (tags and digests) pointing at `image_id`, sorted."""
        return [r["ref"] for r in self.meta.query("SELECT ref FROM tags WHERE image_id=? ORDER BY ref", (image_id,))]

    def repository_tags(self, repository: str) -> list[tuple[str, ImageID]]:
        """(normalized ref, image ID) of every tag of `repository` (digests excluded), by ref."""
        prefix = repository + ":"
        rows = self.meta.query("SELECT ref, image_id FROM tags WHERE substr(ref, 1, ?) = ? ORDER BY ref",
                               (len(prefix), prefix))
        return [(r["ref"], ImageID(r["image_id"])) for r in rows if "@" not in r["ref"]]
