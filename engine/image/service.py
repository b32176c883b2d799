"""Image service: the image operations (tag, import, rmi, prune, the API views).

An image is its config blob; its ID is the config's sha256, so identical
content always has the same ID. Tags map normalized references to IDs.
The rows live in the image store (store.py), the layers in layers.py; other
services reach both only through this service's public methods.
"""
from __future__ import annotations

import bz2
import dataclasses
import fnmatch
import gzip
import io
import json
import lzma
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any

from engine import wire
from engine.errors import Conflict, InvalidParameter, no_such_image
from engine.events import EventBus
from engine.filters import Filters
from engine.ids import ImageID
from engine.image.changes import apply_change
from engine.image.layers import LayerStore, chain_ids
from engine.image.store import ImageRecord, ImageStore
from engine.image.views import HistoryEntry, ImageDetails, ImageSummary
from engine.store.db import BlobStore
from engine.timeutil import parse_rfc3339_ns, rfc3339_ns
from engine.types.container import ContainerConfig
from engine.types.results import ImageDeletion
from pydock_common import reference

# the keys `docker images --filter` takes (dockerd's acceptedImageFilterTags)
IMAGE_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})


ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(os.uname().machine, os.uname().machine)

CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
               "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")

# container IDs using an image, split into (running, stopped); injected by the daemon
UsageFn = Callable[[str], tuple[list[str], list[str]]]


def short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def decompress_to(src: IO[bytes], dst: IO[bytes]) -> None:
    """Copy a possibly compressed tar stream (gzip, bzip2, xz, zstd) as plain tar."""
    head = src.read(6)
    prefixed = io.BufferedReader(_Prefixed(head, src), 1 << 20)
    if head[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=prefixed) as gz:
            shutil.copyfileobj(gz, dst, 1 << 20)
    elif head[:3] == b"BZh":
        with bz2.BZ2File(prefixed) as bz:
            shutil.copyfileobj(bz, dst, 1 << 20)
    elif head[:6] == b"\xfd7zXZ\x00":
        with lzma.LZMAFile(prefixed) as xz:
            shutil.copyfileobj(xz, dst, 1 << 20)
    elif head[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard  # optional: only zstd layers need it
        with zstandard.ZstdDecompressor().stream_reader(prefixed) as zst:
            shutil.copyfileobj(zst, dst, 1 << 20)
    else:
        shutil.copyfileobj(prefixed, dst, 1 << 20)


class _Prefixed(io.RawIOBase):
    """A stream that first returns bytes already read from it (the sniffed magic), then the rest."""

    def __init__(self, head: bytes, f: IO[bytes]) -> None:
        super().__init__()
        self.head, self.f = head, f

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.head:
            data, self.head = self.head[:len(buf)], self.head[len(buf):]
        else:
            data = self.f.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _refs_removed_with(norm: str, refs: list[str]) -> list[str]:
    """Untagging a repository's last tag also drops its digest references, as Docker does."""
    repo = reference.parse(norm).repository
    if "@" in norm or any("@" not in r and r != norm and reference.parse(r).repository == repo for r in refs):
        return [norm]
    return [norm] + [r for r in refs if "@" in r and reference.parse(r).repository == repo]


class ImageService:
    def __init__(self, store: ImageStore, blobs: BlobStore, layers: LayerStore, events: EventBus,
                 tmp_dir: str, usage: UsageFn, storage_driver: str) -> None:
        """`usage(image_id)` answers (running, stopped) container IDs using the image: rmi and prune refuse those;
        `storage_driver` is the daemon's, which `docker image inspect` names."""
        self.storage_driver = storage_driver
        self.store = store
        self.blobs = blobs
        self.layers = layers
        self.events = events
        self.tmp_dir = tmp_dir
        self.usage = usage

    # ---- lookup -------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """Image ID for a reference: full or short ID, name[:tag], or name@digest."""
        if not ref or len(ref) > 4096:
            raise no_such_image(ref[:200])
        hexref = ref.removeprefix("sha256:")
        if all(c in "0123456789abcdef" for c in hexref) and len(hexref) <= 64:
            matches = self.store.ids_with_prefix(hexref)
            if len(matches) == 1 and (len(hexref) == 64 or not self._is_tag(ref)):
                return matches[0]
        try:
            norm = str(reference.parse(ref))
        except InvalidParameter:
            raise no_such_image(ref[:200]) from None
        image_id = self.store.tagged_image(norm)
        if image_id is None:
            raise no_such_image(ref[:200])
        return image_id

    def _is_tag(self, ref: str) -> bool:
        try:
            return self.store.tagged_image(str(reference.parse(ref))) is not None
        except InvalidParameter:
            return False

    def record(self, image_id: str) -> ImageRecord:
        record = self.store.get(image_id)
        if record is None:
            raise no_such_image(image_id)
        return record

    def config(self, image_id: str) -> dict[str, Any]:
        return self.record(image_id).config()

    def run_config(self, image_id: str) -> ContainerConfig:
        """The image's defaults for the containers made from it (its config's `config`)."""
        return wire.decode(ContainerConfig, self.config(image_id).get("config"))

    def top_chain(self, image_id: str) -> str:
        ids = chain_ids(self.config(image_id).get("rootfs", {}).get("diff_ids") or [])
        return ids[-1] if ids else ""

    def tags_of(self, image_id: str) -> list[str]:
        return [reference.parse(r).familiar() for r in self.store.refs_of(image_id) if "@" not in r]

    def digests_of(self, image_id: str) -> list[str]:
        return [reference.parse(r).familiar() for r in self.store.refs_of(image_id) if "@" in r]

    # ---- creation -----------------------------------------------------
    def create(self, config: dict[str, Any], parent: str = "", raw: bytes | None = None) -> str:
        """Store an image config whose layers are all registered; returns its ID.

        `raw` keeps a pulled config byte-exact: its digest is the image ID the
        registry and every other engine know the image by.
        """
        diff_ids = config.get("rootfs", {}).get("diff_ids") or []
        chains = chain_ids(diff_ids)
        for c in chains:
            self.layers.get(c)
        if raw is None:
            raw = json.dumps(config, separators=(",", ":"), sort_keys=False).encode()
        image_id = ImageID(self.blobs.put_bytes(raw))
        size = sum(self.layers.get(c).size for c in chains)
        created = parse_rfc3339_ns(config.get("created", "")) // 1_000_000_000
        self.store.add(ImageRecord(image_id, raw, parent, created, size))
        return image_id

    def tag(self, image_ref: str, repo: str, tag: str = "") -> str:
        image_id = self.resolve(image_ref)
        ref = reference.with_tag(repo, tag)
        self.set_tag(image_id, str(ref))
        self.events.publish("image", "tag", image_id, {"name": ref.familiar()})
        return image_id

    def set_tag(self, image_id: str, norm_ref: str) -> None:
        """Point the normalized reference `norm_ref` (repo:tag or repo@digest) at `image_id`, silently."""
        self.store.set_tag(norm_ref, image_id)

    def set_tags(self, image_id: str, norm_refs: list[str]) -> dict[str, ImageID | None]:
        """Point the normalized references at `image_id` at once, silently; returns their previous targets.

        A pull moves its tag and digest reference together, and learns from the
        previous target whether to say "Downloaded newer image".
        """
        return self.store.set_tags(norm_refs, image_id)

    def tagged_image(self, norm_ref: str) -> ImageID | None:
        """The image a normalized reference points at, if it is a stored tag or digest."""
        return self.store.tagged_image(norm_ref)

    def exists(self, image_id: str) -> bool:
        return self.store.get(image_id) is not None

    def raw_config(self, image_id: str) -> bytes:
        """The config exactly as stored (its sha256 is the image ID)."""
        return self.record(image_id).raw_config

    def parent(self, image_id: str) -> str:
        record = self.store.get(image_id)
        return record.parent if record else ""

    def ids(self) -> list[ImageID]:
        return self.store.ids()

    def configs(self) -> dict[ImageID, dict[str, Any]]:
        """Every image's config by ID."""
        return {r.id: r.config() for r in self.store.records()}

    def repository_tags(self, repository: str) -> list[tuple[str, ImageID]]:
        """(normalized ref, image ID) of every tag of `repository` (digests excluded), by ref."""
        return self.store.repository_tags(repository)

    def has_tag(self, norm_ref: str, image_id: str) -> bool:
        return self.store.tagged_image(norm_ref) == image_id

    def import_tar(self, src: IO[bytes], repo: str = "", tag: str = "", changes: Iterable[str] = (),
                   message: str = "", platform: str = "") -> str:
        """`docker import`: one layer from a (compressed) tar plus config changes."""
        ref = reference.with_tag(repo, tag) if repo else None
        cfg: dict[str, Any] = {}
        for line in changes:
            apply_change(cfg, line)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="import-")
        try:
            with os.fdopen(fd, "wb") as out:
                decompress_to(src, out)
            layer = self.layers.register(tmp)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            raise InvalidParameter(f"invalid tar archive: {e}") from e
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        now = rfc3339_ns()
        os_name, _, arch = (platform or f"linux/{ARCH}").partition("/")
        config = {
            "architecture": arch or ARCH,
            "config": cfg,
            "created": now,
            "history": [{"created": now, "created_by": "", "comment": message or "Imported from -"}],
            "os": os_name or "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        image_id = self.create(config)
        self.events.publish("image", "import", image_id, {"name": image_id})
        if ref:
            self.set_tag(image_id, str(ref))
            self.events.publish("image", "tag", image_id, {"name": ref.familiar()})
        return image_id

    # ---- views --------------------------------------------------------
    def inspect(self, ref: str) -> ImageDetails:
        image_id = self.resolve(ref)
        record = self.record(image_id)
        cfg = record.config()
        chains = chain_ids(cfg.get("rootfs", {}).get("diff_ids") or [])
        return ImageDetails(record, cfg, self.tags_of(image_id), self.digests_of(image_id),
                            self.layers.lower_dirs(chains[-1]) if chains else [], self.storage_driver)

    def summaries(self, all_: bool = False, filters: Filters | None = None) -> list[ImageSummary]:
        """`docker images`: the images that pass `filters`, newest first."""
        filters = (filters or Filters()).validate(IMAGE_FILTERS)
        out = []
        records = self.store.records()
        parents = {r.parent for r in records if r.parent}
        created: dict[str, int] = {r.id: r.created for r in records}
        for record in records:
            image_id = record.id
            tags = self.tags_of(image_id)
            labels = (record.config().get("config") or {}).get("Labels") or {}
            if not all_ and not tags and image_id in parents:
                continue  # intermediate build layer
            if not self._matches(filters, image_id, record.created, tags, labels, created):
                continue
            digests = self.digests_of(image_id)
            if "reference" in filters:  # dockerd lists only the references the filter matched
                tags = [t for t in tags if _reference_matches(t, filters.get("reference"))]
                digests = [d for d in digests if _reference_matches(d.split("@", 1)[0], filters.get("reference"))]
            out.append(ImageSummary(record, tags, digests, labels))
        return out

    def _matches(self, filters: Filters, image_id: str, created: int, tags: list[str], labels: dict[str, str],
                 all_created: dict[str, int]) -> bool:
        """dockerd's image filters (daemon/images/images.go) on one image."""
        if "dangling" in filters and filters.boolean("dangling", False) != (not tags):
            return False
        if not (filters.labels("label", labels) and filters.no_labels("label!", labels)):
            return False
        if "reference" in filters and not any(_reference_matches(t, filters.get("reference")) for t in tags):
            return False
        for key, newer in (("before", False), ("since", True)):
            if key in filters:
                pivot = all_created.get(self.resolve(filters.get(key)[0]))
                if pivot is None or not (created > pivot if newer else created < pivot):
                    return False
        return all(created * 1_000_000_000 < until for until in filters.times("until"))

    def history(self, ref: str) -> list[HistoryEntry]:
        """The image's build steps, newest first; only the newest names the image (the rest are "<missing>")."""
        image_id = self.resolve(ref)
        cfg = self.config(image_id)
        layer_sizes = iter([self.layers.get(c).size for c in chain_ids(cfg.get("rootfs", {}).get("diff_ids") or [])])
        out = [HistoryEntry(parse_rfc3339_ns(h.get("created", "")) // 1_000_000_000, h.get("created_by", ""),
                            0 if h.get("empty_layer") else next(layer_sizes, 0), h.get("comment", ""))
               for h in cfg.get("history") or []]
        out.reverse()
        if out:
            out[0] = dataclasses.replace(out[0], image_id=image_id, tags=self.tags_of(image_id))
        return out

    # ---- removal ------------------------------------------------------
    def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[ImageDeletion]:
        """`docker rmi`: untag by name; delete when the last reference goes, as Docker decides."""
        image_id = self.resolve(ref)
        by_id = self._is_id_ref(ref, image_id)
        running, stopped = self.usage(image_id)
        tags = self.store.refs_of(image_id)
        result: list[ImageDeletion] = []
        if not by_id:
            norm = str(reference.parse(ref))
            gone = _refs_removed_with(norm, tags)
            if len(tags) > len(gone) or (force and (running or stopped)):
                for t in gone:
                    self._untag(t, image_id, result)
                return result
            if running or stopped:
                cid = (running or stopped)[0]
                raise Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                               f"container {cid[:12]} is using its referenced image {short(image_id)}")
        else:
            if running:
                raise Conflict(f"conflict: unable to delete {short(image_id)} (cannot be forced) - "
                               f"image is being used by running container {running[0][:12]}")
            if stopped and not force:
                raise Conflict(f"conflict: unable to delete {short(image_id)} (must be forced) - "
                               f"image is being used by stopped container {stopped[0][:12]}")
            if len({reference.parse(t).repository for t in tags}) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {short(image_id)} (must be forced) - "
                               "image is referenced in multiple repositories")
        if self.store.has_children(image_id) and (by_id or len(tags) <= 1):
            raise Conflict(f"conflict: unable to delete {short(image_id)} (cannot be forced) - "
                           "image has dependent child images")
        for t in tags:
            self._untag(t, image_id, result)
        if stopped:
            return result
        parent = self.parent(image_id)
        self._delete(image_id, result)
        if prune:
            self._prune_parents(parent, result)
        return result

    def _prune_parents(self, parent: str, result: list[ImageDeletion]) -> None:
        """After a delete, its parent chain goes too while each parent is untagged, has no other child and
        no container uses it (dockerd's imageDeleteHelper with prune): a build's intermediate images
        would otherwise stay behind as `<none>` and keep their layers."""
        while parent and self.exists(parent):
            running, stopped = self.usage(parent)
            if self.store.refs_of(parent) or self.store.has_children(parent) or running or stopped:
                return
            grandparent = self.parent(parent)
            self._delete(parent, result)
            parent = grandparent

    def _is_id_ref(self, ref: str, image_id: str) -> bool:
        hexref = ref.removeprefix("sha256:")
        return image_id.startswith("sha256:" + hexref) and not self._is_tag(ref)

    def _untag(self, norm: str, image_id: str, result: list[ImageDeletion]) -> None:
        self.store.untag(norm)
        name = reference.parse(norm).familiar()
        result.append(ImageDeletion(untagged=name))
        self.events.publish("image", "untag", image_id, {"name": name})

    def _delete(self, image_id: str, result: list[ImageDeletion]) -> None:
        self.store.delete(image_id)
        self.blobs.delete(image_id)
        result.append(ImageDeletion(deleted=image_id))
        self.events.publish("image", "delete", image_id, {"name": image_id})
        self.gc_layers()

    def gc_layers(self) -> int:
        """Remove the layers no image uses any more; returns how many went."""
        keep: set[str] = set()
        for record in self.store.records():
            keep.update(chain_ids(record.config().get("rootfs", {}).get("diff_ids") or []))
        return self.layers.remove_unreferenced(keep)

    def prune(self, filters: Filters | None = None) -> tuple[list[ImageDeletion], int]:
        """Remove dangling images (or all unused with `dangling=false`)."""
        filters = (filters or Filters()).validate({"dangling", "label", "label!", "until"})
        dangling_only = filters.boolean("dangling", True)
        deleted: list[ImageDeletion] = []
        layer_sizes = self.layers.sizes()
        for img in self.summaries(all_=True, filters=filters.without("dangling")):
            image_id = img.record.id
            if (dangling_only and img.tags) or not self.exists(image_id):
                continue  # tagged, or already gone as the untagged parent of an image pruned before it
            running, stopped = self.usage(image_id)
            if running or stopped or self.store.has_children(image_id):
                continue
            for t in self.store.refs_of(image_id):
                self._untag(t, image_id, deleted)
            parent = self.parent(image_id)
            self._delete(image_id, deleted)
            self._prune_parents(parent, deleted)
        # as dockerd: the bytes of the layers that went, each counted once however many images shared it
        remaining = self.layers.sizes()
        reclaimed = sum(size for chain, size in layer_sizes.items() if chain not in remaining)
        self.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed


def _reference_matches(tag: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(tag, pat) or fnmatch.fnmatch(tag.rsplit(":", 1)[0], pat) for pat in patterns)
