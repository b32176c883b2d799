"""The classic builder's step cache: the `build_cache` table, and only this module runs SQL on it.

A step is a hit when (parent image, step key) maps to an image that still
exists and, with `--cache-from`, is one of the allowed images. The cached
results are ordinary intermediate images, so forgetting them frees no space
by itself: `docker image prune` does, as with dockerd's classic builder.
"""
from __future__ import annotations

from collections.abc import Callable

from engine.store.db import MetaStore
from engine.types.results import Pruned

BUILD_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    parent_id TEXT NOT NULL,        -- image a build step started from ('' for FROM scratch)
    key TEXT NOT NULL,              -- sha256 of the step: expanded instruction, build args, content hash
    image_id TEXT NOT NULL,         -- the image that step produced
    PRIMARY KEY (parent_id, key)
);
"""


class BuildCache:
    def __init__(self, meta: MetaStore, image_exists: Callable[[str], bool]) -> None:
        """`image_exists(id)`: a cached step whose image was removed since is a miss."""
        self.meta = meta
        meta.ensure_schema(BUILD_CACHE_SCHEMA)
        self.image_exists = image_exists

    def lookup(self, parent: str, key: str, allowed: set[str] | None) -> str | None:
        """The image a step produced before from `parent`; `allowed` (from --cache-from) restricts the hits."""
        row = self.meta.query_one("SELECT image_id FROM build_cache WHERE parent_id=? AND key=?", (parent, key))
        if row is None or not self.image_exists(row["image_id"]):
            return None
        if allowed is not None and row["image_id"] not in allowed:
            return None
        return str(row["image_id"])

    def store(self, parent: str, key: str, image_id: str) -> None:
        with self.meta.transaction() as db:
            db.execute("INSERT OR REPLACE INTO build_cache(parent_id, key, image_id) VALUES (?,?,?)",
                       (parent, key, image_id))

    def prune(self) -> Pruned:
        """`docker builder prune`: forget every cached step, so the next build runs them all."""
        with self.meta.transaction() as db:
            ids = [r["image_id"] for r in db.execute("SELECT DISTINCT image_id FROM build_cache").fetchall()]
            db.execute("DELETE FROM build_cache")
        return Pruned(ids)
