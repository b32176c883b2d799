"""Layer store: safe extraction of layer tars into directories stacked by overlayfs.

A layer is identified by its chain ID (so the same diff on different parents
is a different layer, as in Docker). Each layer's directory holds only its own
diff, with OCI whiteouts converted to overlayfs' form (0/0 character devices
and the opaque-directory xattr, `trusted.overlay.opaque`
or in a user namespace `user.overlay.opaque`), so a container rootfs is one overlay
mount with the chain as lowerdirs.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import uuid
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import IO

from engine.errors import NotFound
from engine.ids import ChainID, DiffID
from engine.image import upperdir
from engine.linux.fsutil import dir_size
from engine.store.db import BlobStore, MetaStore, sha256_file
from pydock_common.files import fsync_dir
from pydock_common.untar import OPAQUE_MARKER, WHITEOUT_PREFIX, Options, Scope, untar

LAYER_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    cache_id TEXT NOT NULL UNIQUE,  -- directory name under layers/
    size INTEGER NOT NULL
);
"""


def chain_id(parent: str, diff_id: str) -> ChainID:
    """The bottom layer's chain ID is its diff ID; above it, the hash of the parent's chain ID and the diff ID."""
    if not parent:
        return ChainID(diff_id)
    return ChainID("sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest())


def chain_ids(diff_ids: list[str]) -> list[ChainID]:
    """The chain ID of each layer of an image, bottom first, from its config's `rootfs.diff_ids`."""
    out: list[ChainID] = []
    for d in diff_ids:
        out.append(chain_id(out[-1] if out else "", d))
    return out


def extract_layer(tar_path: str, dest: str, owner: tuple[int, int] | None = None) -> None:
    """Unpack one layer tar into `dest`, converting OCI whiteouts for overlayfs.

    `owner` replaces the entries' own owners (None keeps them).
    """
    untar(tar_path, dest, Options(scope=Scope.BENEATH, owner=owner, whiteouts=True, what="layer"))


def write_diff_tar(upper: str, out: IO[bytes]) -> None:
    """Serialise an overlay upperdir (kernel overlayfs' or fuse-overlayfs') as an OCI layer tar: deletions
    become .wh. files, opaque directories get the .wh..wh..opq marker (engine.image.upperdir)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in _iter_tree(upper):
            path = os.path.join(upper, rel)
            st = os.lstat(path)
            name = os.path.basename(rel)
            deleted = upperdir.deleted_name(name, st)
            if deleted is not None:
                info = tarfile.TarInfo(os.path.join(os.path.dirname(rel), WHITEOUT_PREFIX + deleted))
                info.mtime = int(st.st_mtime)
                tar.addfile(info)
                continue
            if not upperdir.is_content(name):
                continue
            info = tar.gettarinfo(path, arcname=rel)
            if info is None:
                continue  # sockets have no tar form
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if stat.S_ISDIR(st.st_mode) and upperdir.is_opaque(path):
                marker = tarfile.TarInfo(os.path.join(rel, OPAQUE_MARKER))
                marker.mtime = int(st.st_mtime)
                tar.addfile(marker)


def _iter_tree(root: str) -> Iterator[str]:
    """Depth-first relative paths, each directory before its contents, sorted."""
    def walk(rel: str) -> Iterator[str]:
        for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
            child = f"{rel}/{name}" if rel else name
            yield child
            full = os.path.join(root, child)
            if os.path.isdir(full) and not os.path.islink(full):
                yield from walk(child)
    return walk("")


@dataclass(frozen=True)
class Layer:
    chain_id: ChainID
    diff_id: DiffID
    parent: str      # the parent layer's chain ID, "" for a bottom layer
    cache_id: str    # its directory under the layer root
    size: int        # unpacked bytes


@dataclass
class StagedLayer:
    """A layer extracted into a private directory, not yet part of the store."""
    tar_path: str
    diff_id: DiffID
    cache_id: str
    staging: str
    size: int = 0


# The mount points an OCI runtime needs in every container and images rarely have, in one read-only layer
# every container's root filesystem shares as its topmost lower (Docker makes a per-container "init" layer
# of them): the runtime finds them there instead of creating them in the container's writable layer at
# each start, where each new file cost 0.2-0.3 ms on an ext4 root measured here. Like Docker's, its empty
# /etc files hide an image's own, which the container's bind mounts hide anyway.
INIT_LAYER = "init"
INIT_LAYER_DIRS = ("dev", "etc", "proc", "sys")
INIT_LAYER_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


def _make_init_layer(path: str) -> None:
    """Made once per data root, under a temporary name then renamed: never seen half made (a daemon killed
    meanwhile leaves a `.tmp-` directory, which the next start removes)."""
    if os.path.isdir(path):
        return
    tmp = os.path.join(os.path.dirname(path), f".tmp-{INIT_LAYER}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in INIT_LAYER_DIRS:
        os.makedirs(os.path.join(tmp, name), mode=0o755)
    for name in INIT_LAYER_FILES:
        os.close(os.open(os.path.join(tmp, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    os.rename(tmp, path)


class LayerStore:
    def __init__(self, root: str, meta: MetaStore, blobs: BlobStore, owner: tuple[int, int] | None = None) -> None:
        """`owner`: who owns every unpacked file, None for the owners the layer tars name (see RootFS.layer_owner)."""
        self.root = root
        self.owner = owner
        self.meta = meta
        meta.ensure_schema(LAYER_SCHEMA)
        self.blobs = blobs
        self.empty_dir = os.path.join(root, "empty")
        os.makedirs(self.empty_dir, exist_ok=True)
        self.init_dir = os.path.join(root, INIT_LAYER)
        _make_init_layer(self.init_dir)

    def get(self, chain: str) -> Layer:
        row = self.meta.query_one("SELECT * FROM layers WHERE chain_id=?", (chain,))
        if row is None:
            raise NotFound(f"layer {chain} not found")
        return Layer(ChainID(row["chain_id"]), DiffID(row["diff_id"]), row["parent"], row["cache_id"], row["size"])

    def exists(self, chain: str) -> bool:
        return self.meta.query_one("SELECT 1 FROM layers WHERE chain_id=?", (chain,)) is not None

    def diff_dir(self, layer: Layer) -> str:
        return os.path.join(self.root, layer.cache_id, "diff")

    def register(self, tar_path: str, parent_chain: str = "") -> Layer:
        """Adopt an uncompressed layer tar (moved into the blob store) as a layer on `parent_chain`.

        Extraction happens in a private directory that is renamed into place
        only when complete, then the row is committed; a failure at any step
        removes what was written.
        """
        diff_id = DiffID(sha256_file(tar_path))
        chain = chain_id(parent_chain, diff_id)
        if self.exists(chain):
            os.unlink(tar_path)
            return self.get(chain)
        return self.commit(self.stage(tar_path, diff_id), parent_chain)

    def stage(self, tar_path: str, diff_id: DiffID) -> StagedLayer:
        """Extract a layer tar whose digest the caller has computed into a private directory.

        Nothing is visible until `commit`, so staging can run ahead of the
        parent layers (a pull extracts while other layers still download);
        `discard` undoes it.
        """
        cache_id = uuid.uuid4().hex[:24]
        staged = StagedLayer(tar_path, diff_id, cache_id, os.path.join(self.root, f".tmp-{cache_id}"))
        try:
            os.makedirs(os.path.join(staged.staging, "diff"))
            extract_layer(tar_path, os.path.join(staged.staging, "diff"), self.owner)
            staged.size = dir_size(os.path.join(staged.staging, "diff"))
        except BaseException:
            self.discard(staged)
            raise
        return staged

    def commit(self, staged: StagedLayer, parent_chain: str = "") -> Layer:
        """Make a staged layer visible on `parent_chain`: rename into place, adopt its tar, add the row."""
        chain = chain_id(parent_chain, staged.diff_id)
        final = os.path.join(self.root, staged.cache_id)
        committed = False
        try:
            if self.exists(chain):
                return self.get(chain)
            os.rename(staged.staging, final)
            fsync_dir(self.root)
            self.blobs.adopt(staged.tar_path, staged.diff_id)
            with self.meta.transaction() as db:
                # a concurrent register of the same chain may have won meanwhile
                if db.execute("SELECT 1 FROM layers WHERE chain_id=?", (chain,)).fetchone() is None:
                    db.execute("INSERT INTO layers(chain_id, diff_id, parent, cache_id, size) VALUES (?,?,?,?,?)",
                               (chain, staged.diff_id, parent_chain, staged.cache_id, staged.size))
                    committed = True
        finally:
            if not committed:
                shutil.rmtree(final, ignore_errors=True)
                self.discard(staged)
        return Layer(chain, staged.diff_id, parent_chain, staged.cache_id, staged.size) if committed \
            else self.get(chain)

    @staticmethod
    def discard(staged: StagedLayer) -> None:
        """Remove what staging wrote (a no-op after commit)."""
        shutil.rmtree(staged.staging, ignore_errors=True)
        if os.path.exists(staged.tar_path):
            os.unlink(staged.tar_path)

    def container_lowers(self, image_lowers: list[str]) -> list[str]:
        """A container's lower directories: the init layer over its image's (lower_dirs)."""
        return [self.init_dir, *image_lowers]

    def lower_dirs(self, top_chain: str) -> list[str]:
        """Diff directories of a chain, topmost first, as overlayfs wants them."""
        dirs = []
        chain = top_chain
        while chain:
            layer = self.get(chain)
            dirs.append(self.diff_dir(layer))
            chain = layer.parent
        return dirs or [self.empty_dir]

    def chain_ids(self) -> list[ChainID]:
        """Every registered layer's chain ID."""
        return [ChainID(r["chain_id"]) for r in self.meta.query("SELECT chain_id FROM layers")]

    def sizes(self) -> dict[ChainID, int]:
        """Unpacked size of every registered layer, by chain ID."""
        return {ChainID(r["chain_id"]): r["size"] for r in self.meta.query("SELECT chain_id, size FROM layers")}

    def cache_ids(self) -> set[str]:
        """Directory names under the layer root that registered layers use."""
        return {r["cache_id"] for r in self.meta.query("SELECT cache_id FROM layers")}

    def diff_ids(self) -> set[DiffID]:
        """Every registered layer's diff ID (their tars are the blobs the start-up GC keeps)."""
        return {DiffID(r["diff_id"]) for r in self.meta.query("SELECT diff_id FROM layers")}

    def remove_unreferenced(self, keep: AbstractSet[str]) -> int:
        """Delete layers no image chain references; `keep` holds every referenced chain ID."""
        removed = 0
        for row in self.meta.query("SELECT chain_id, diff_id, cache_id FROM layers"):
            if row["chain_id"] in keep:
                continue
            with self.meta.transaction() as db:
                db.execute("DELETE FROM layers WHERE chain_id=?", (row["chain_id"],))
            shutil.rmtree(os.path.join(self.root, row["cache_id"]), ignore_errors=True)
            if not self.meta.query_one("SELECT 1 FROM layers WHERE diff_id=?", (row["diff_id"],)):
                self.blobs.delete(row["diff_id"])
            removed += 1
        return removed
