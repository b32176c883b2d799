"""`docker save`: the arguments resolved as Docker resolves them, then the tarball (Docker's layout plus the OCI index) streamed from the blob store."""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InternalError, InvalidParameter, NotFound
from engine.events import EventBus
from engine.image.oci import CONFIG, IMAGE_NAME, INDEX, LAYER_TAR, MANIFEST, OCI_LAYOUT, REF_NAME
from engine.image.service import ImageService
from engine.store.db import BlobStore
from pydock_common import reference
from pydock_common.reference import Reference

CHUNK = 128 << 10


@dataclass
class SavedImage:
    image_id: str
    raw_config: bytes
    refs: list[Reference] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.raw_config)


def plan_save(images: ImageService, names: list[str]) -> list[SavedImage]:
    """Resolve `docker save` arguments as Docker does, before any byte is sent.

    A name without tag selects every tag of that repository; `name:tag`
    records that tag; an ID or digest reference saves the image untagged.
    """
    plan: dict[str, SavedImage] = {}
    for name in names:
        for image_id, ref in _select(images, name):
            item = plan.get(image_id)
            if item is None:
                if not images.exists(image_id):
                    raise NotFound(f"No such image: {name}")
                item = plan[image_id] = SavedImage(image_id, images.raw_config(image_id))
            if ref is not None and ref not in item.refs:
                item.refs.append(ref)
    return list(plan.values())


def _select(images: ImageService, name: str) -> list[tuple[str, Reference | None]]:
    try:
        ref = reference.parse(name, default_tag=False)
    except InvalidParameter:
        return [(images.resolve(name), None)]
    if not ref.tag and not ref.digest:
        tagged: list[tuple[str, Reference | None]] = [
            (image_id, reference.parse(norm)) for norm, image_id in images.repository_tags(ref.repository)]
        return tagged or [(images.resolve(name), None)]
    image_id = images.resolve(name)
    # `sha256:<hex>` parses as a tag too; only a real tag row makes it one
    is_tag = bool(ref.tag) and not ref.digest and images.has_tag(str(ref), image_id)
    return [(image_id, ref if is_tag else None)]


def iter_save(blobs: BlobStore, events: EventBus, plan: list[SavedImage]) -> Iterator[bytes]:
    """The tarball as chunks, streamed from the blob store (never whole in memory)."""
    contents: dict[str, bytes | str] = {}  # hex -> content, or path of a layer tar in the blob store
    manifest: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for img in plan:
        _describe(blobs, img, contents, manifest, index, repositories)
    for img in plan:
        events.publish("image", "save", img.image_id, {"name": img.image_id})
    yield from _tar_dir("blobs/")
    yield from _tar_dir("blobs/sha256/")
    for hexpart in sorted(contents):
        yield from _tar_blob(f"blobs/sha256/{hexpart}", contents[hexpart])
    yield from _tar_bytes("index.json", _dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": index}))
    yield from _tar_bytes("manifest.json", _dumps(manifest) + b"\n")
    yield from _tar_bytes("oci-layout", OCI_LAYOUT)
    if repositories:
        yield from _tar_bytes("repositories", _dumps(repositories) + b"\n")
    yield b"\0" * 1024


def _describe(store: BlobStore, img: SavedImage, blobs: dict[str, bytes | str],
              manifest: list[dict[str, Any]], index: list[dict[str, Any]],
              repositories: dict[str, dict[str, str]]) -> None:
    """Add one image's blobs and its entries in manifest.json, index.json and repositories."""
    config = img.config
    diff_ids: list[str] = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = []
    for diff_id in diff_ids:
        path = store.path(diff_id)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise InternalError(f"layer {diff_id} of image {img.image_id} has no stored tar") from None
        blobs[diff_id[7:]] = path
        layers.append({"mediaType": LAYER_TAR, "digest": diff_id, "size": size})
    blobs[img.image_id[7:]] = img.raw_config
    raw_manifest = _dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": {
        "mediaType": CONFIG, "digest": img.image_id, "size": len(img.raw_config)}, "layers": layers})
    manifest_digest = "sha256:" + hashlib.sha256(raw_manifest).hexdigest()
    blobs[manifest_digest[7:]] = raw_manifest
    platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    desc = {"mediaType": MANIFEST, "digest": manifest_digest, "size": len(raw_manifest)}
    for ref in img.refs:
        index.append({**desc, "annotations": {IMAGE_NAME: str(ref), REF_NAME: ref.tag}, "platform": platform})
        if diff_ids:
            repositories.setdefault(ref.familiar_repository, {})[ref.tag] = diff_ids[-1][7:]
    if not img.refs:
        index.append({**desc, "platform": platform})
    manifest.append({"Config": f"blobs/sha256/{img.image_id[7:]}",
                     "RepoTags": [r.familiar() for r in img.refs] or None,
                     "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]})


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def _tar_dir(name: str) -> Iterator[bytes]:
    yield _header(name, kind=tarfile.DIRTYPE)


def _tar_bytes(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data)) + data + _padding(len(data))


def _tar_blob(name: str, blob: bytes | str) -> Iterator[bytes]:
    if isinstance(blob, bytes):
        yield from _tar_bytes(name, blob)
        return
    with open(blob, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        yield _header(name, size)
        left = size
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise InternalError(f"blob {name} shrank while being saved")
            left -= len(chunk)
            yield chunk
    yield _padding(size)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)
