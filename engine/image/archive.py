"""Image tarballs: `docker save` / `docker load` (the save side is in save.py).

A saved tarball is what Docker 25+ writes, a docker-archive (`manifest.json`,
`repositories`) and an OCI image layout (`oci-layout`, `index.json`) sharing
one `blobs/sha256/` directory, so both Docker and OCI tools read it. Loading
also accepts older Docker archives (`<id>/layer.tar`), pure OCI layouts with
compressed layers, and gzip/bzip2/xz/zstd-compressed tarballs.

The archive is never unpacked to disk: members are read by the names the
manifests give, after checking those names stay inside the archive. Every
layer is verified against the config's diff ID before anything is stored,
so a failed load leaves no image, layer or temp file behind.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from engine.errors import InvalidParameter, NotFound
from engine.events import EventBus
from engine.image.layers import LayerStore, chain_ids
from engine.image.oci import DOCKER_LIST, IMAGE_NAME, INDEX, REF_NAME
from engine.image.save import SavedImage, iter_save, plan_save
from engine.image.service import ARCH, ImageService, decompress_to
from engine.store.db import BlobStore, check_digest
from pydock_common import reference
from pydock_common.humanize import human_size
from pydock_common.reference import Reference

MAX_JSON = 16 << 20  # manifests and configs are small; refuse to buffer anything huge
MAX_LINKS = 8
# what a corrupt (not merely unreadable) layer or archive raises while being read; zstd
# support is optional, and without it a zstd layer is unreadable input too
_CORRUPT: tuple[type[BaseException], ...] = (tarfile.TarError, gzip.BadGzipFile, EOFError, lzma.LZMAError,
                                             zlib.error, ImportError)
try:
    import zstandard
    _CORRUPT += (zstandard.ZstdError,)
except ImportError:
    pass


class ImageArchive:
    """`docker save` and `docker load`: image tarballs in both Docker's and the OCI layout."""

    def __init__(self, images: ImageService, layers: LayerStore, blobs: BlobStore, events: EventBus,
                 tmp_dir: str) -> None:
        self.images = images
        self.layers = layers
        self.blobs = blobs
        self.events = events
        self.tmp_dir = tmp_dir

    def plan_save(self, names: list[str]) -> list[SavedImage]:
        """Resolve the names before any byte is sent, so an unknown one is a plain 404."""
        return plan_save(self.images, names)

    def iter_save(self, plan: list[SavedImage]) -> Iterator[bytes]:
        return iter_save(self.blobs, self.events, plan)

    def load(self, src: IO[bytes], quiet: bool = True) -> list[dict[str, Any]]:
        """`docker load`; returns the JSON-stream messages Docker prints."""
        with tempfile.TemporaryFile(dir=self.tmp_dir, prefix="load-") as spool, _open_tar(src, spool) as tar:
            archive = _Archive(tar)
            items = _docker_items(archive) if archive.has("manifest.json") else _oci_items(archive)
            return _Loader(self, archive, quiet).run(items)


@dataclass
class _LayerRef:
    path: str  # name inside the archive
    digest: str = ""  # the blob's own digest (OCI descriptors), checked before decompressing


@dataclass
class _LoadItem:
    raw_config: bytes
    diff_ids: list[str]
    layers: list[_LayerRef]
    refs: list[Reference]


class _Archive:
    """Regular files of an image tarball, found only by the names manifests give."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for m in tar:
                self.members[posixpath.normpath(m.name.lstrip("/"))] = m
        except tarfile.TarError as e:
            raise InvalidParameter(f"invalid tar archive: {e}") from e

    def has(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str) -> IO[bytes]:
        member = self._resolve(name)
        f = self.tar.extractfile(member)
        assert f is not None  # _resolve only returns regular files
        return f

    def read(self, name: str) -> bytes:
        """A small member (manifest, index, config), refused when implausibly large."""
        if self._resolve(name).size > MAX_JSON:
            raise InvalidParameter(f"invalid archive: {name} is too large")
        return self.open(name).read()

    def read_json(self, name: str) -> Any:
        return _parse_json(self.read(name), name)

    def read_blob(self, digest: Any) -> bytes:
        """A small blob of an OCI layout, verified against its digest."""
        name = blob_path(digest)
        data = self.read(name)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidParameter(f"invalid archive: {name} does not match its digest")
        return data

    def _resolve(self, name: str) -> tarfile.TarInfo:
        """Follow links inside the archive (old Docker links shared layer.tar files)."""
        path = safe_name(name)
        for _ in range(MAX_LINKS):
            member = self.members.get(path)
            if member is None:
                raise InvalidParameter(f"invalid archive: {path} not found")
            if member.isreg():
                return member
            if member.issym():
                path = _link_target(name, posixpath.join(posixpath.dirname(path), member.linkname))
            elif member.islnk():
                path = _link_target(name, member.linkname)
            else:
                raise InvalidParameter(f"invalid archive: {path} is not a regular file")
        raise InvalidParameter(f"invalid archive: too many levels of links at {name}")


def safe_name(name: Any) -> str:
    """A name from a manifest as a clean relative path; `..`, absolute and odd names are refused."""
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name or name.startswith("/") \
            or ".." in name.split("/") or posixpath.normpath(name) == ".":
        raise _outside(repr(name))
    return posixpath.normpath(name)


def _link_target(name: str, target: str) -> str:
    """Where a link inside the archive points; it may use `..` but must stay inside."""
    path = posixpath.normpath(target)
    if target.startswith("/") or "\0" in target or path == "." or path == ".." or path.startswith("../"):
        raise _outside(f"{name!r} -> {target!r}")
    return path


def _outside(shown: str) -> InvalidParameter:
    return InvalidParameter(f"invalid archive path {shown[:300]}: must be a relative path inside the archive")


def blob_path(digest: Any) -> str:
    if not isinstance(digest, str):
        raise InvalidParameter("invalid archive: descriptor without a digest")
    return f"blobs/sha256/{check_digest(digest)}"


def _parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise InvalidParameter(f"invalid archive: {what} is not valid JSON: {e}") from None


def _open_tar(src: IO[bytes], spool: IO[bytes]) -> tarfile.TarFile:
    """A random-access tar: `src` itself when it is a seekable plain tar, else decompressed to `spool`."""
    try:
        if src.seekable():
            start = src.tell()
            try:
                return tarfile.open(fileobj=src, mode="r:")
            except tarfile.ReadError:
                src.seek(start)
        decompress_to(src, spool)
        spool.seek(0)
        return tarfile.open(fileobj=spool, mode="r:")
    except _CORRUPT as e:
        raise InvalidParameter(f"invalid tar archive: {e}") from e


def _docker_items(archive: _Archive) -> list[_LoadItem]:
    manifest = archive.read_json("manifest.json")
    if manifest is None:
        raise InvalidParameter("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(manifest, list) or not all(isinstance(m, dict) for m in manifest):
        raise InvalidParameter("invalid manifest: must be a list of objects")
    items = []
    for m in manifest:
        raw = archive.read(safe_name(m.get("Config")))
        paths = m.get("Layers") or []
        tags = m.get("RepoTags") or []
        if not isinstance(paths, list) or not isinstance(tags, list):
            raise InvalidParameter("invalid manifest: Layers and RepoTags must be lists")
        refs = [_tag_ref(t) for t in tags]
        items.append(_item(raw, [_LayerRef(safe_name(p)) for p in paths], refs))
    return items


def _tag_ref(tag: Any) -> Reference:
    if not isinstance(tag, str):
        raise InvalidParameter(f"invalid tag {tag!r}")
    ref = reference.parse(tag, default_tag=False)
    if not ref.tag or ref.digest:
        raise InvalidParameter(f"invalid tag {tag!r}")
    return ref


def _oci_items(archive: _Archive) -> list[_LoadItem]:
    if not archive.has("index.json"):
        raise InvalidParameter("invalid archive: no manifest.json or index.json found (not a docker or OCI image tarball)")
    index = archive.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidParameter("invalid archive: index.json has no manifests list")
    items = []
    for desc in index["manifests"]:
        desc = _platform_manifest(archive, desc)
        manifest = _parse_json(archive.read_blob(desc.get("digest")), "manifest")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
                or not isinstance(manifest.get("layers") or [], list):
            raise InvalidParameter(f"invalid archive: manifest {desc.get('digest')} has no config")
        raw = archive.read_blob(manifest["config"].get("digest"))
        layers = [_LayerRef(blob_path(d.get("digest") if isinstance(d, dict) else None), d["digest"])
                  for d in manifest.get("layers") or []]
        items.append(_item(raw, layers, _annotated_refs(desc)))
    return items


def _platform_manifest(archive: _Archive, desc: Any) -> dict[str, Any]:
    """An image manifest descriptor; a nested index is narrowed to this host's platform."""
    for _ in range(MAX_LINKS):
        if not isinstance(desc, dict):
            raise InvalidParameter("invalid archive: malformed descriptor in index")
        if desc.get("mediaType") not in (INDEX, DOCKER_LIST):
            return desc
        nested = _parse_json(archive.read_blob(desc.get("digest")), "index")
        candidates = nested.get("manifests") if isinstance(nested, dict) else None
        if not isinstance(candidates, list):
            raise InvalidParameter(f"invalid archive: index {desc.get('digest')} has no manifests list")
        match = next((d for d in candidates if isinstance(d, dict)
                      and (d.get("platform") or {}).get("os", "linux") == "linux"
                      and (d.get("platform") or {}).get("architecture", ARCH) == ARCH), None)
        if match is None:
            raise NotFound(f"no matching manifest for linux/{ARCH} in the archive's index")
        desc = {**match, "annotations": {**(match.get("annotations") or {}), **(desc.get("annotations") or {})}}
    raise InvalidParameter("invalid archive: indexes nested too deeply")


def _annotated_refs(desc: dict[str, Any]) -> list[Reference]:
    """Containerd's full name, or a ref.name that is a whole reference (a bare tag names nothing)."""
    notes = desc.get("annotations") or {}
    name = notes.get(IMAGE_NAME) or notes.get(REF_NAME) or ""
    if not isinstance(name, str) or not name or (name == notes.get(REF_NAME) and not any(c in name for c in ":/")):
        return []
    return [_tag_ref(name)]


def _item(raw: bytes, layers: list[_LayerRef], refs: list[Reference]) -> _LoadItem:
    config = _parse_json(raw, "image config")
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, dict):
        raise InvalidParameter("invalid image JSON, no RootFS key")
    os_name = config.get("os") or "linux"
    if os_name != "linux":
        raise InvalidParameter(f"cannot load {os_name} image on linux")
    diff_ids = rootfs.get("diff_ids") or []
    if rootfs.get("type") != "layers" or not isinstance(diff_ids, list):
        raise InvalidParameter("invalid image JSON: rootfs must be of type layers")
    for d in diff_ids:
        check_digest(d if isinstance(d, str) else "")
    if len(layers) != len(diff_ids):
        raise InvalidParameter(f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(diff_ids)}")
    return _LoadItem(raw, diff_ids, layers, refs)


class _Loader:
    """Verify every missing layer into temp files, then register, create and tag.

    Nothing enters the stores until every layer has matched its diff ID; if
    registering still fails (a layer tar the extractor rejects), the layers
    this load added are removed again.
    """

    def __init__(self, owner: ImageArchive, archive: _Archive, quiet: bool) -> None:
        self.images = owner.images
        self.layers = owner.layers
        self.events = owner.events
        self.tmp_dir = owner.tmp_dir
        self.archive = archive
        self.quiet = quiet
        self.staged: dict[str, str] = {}  # chain ID -> verified uncompressed tar
        self.messages: list[dict[str, Any]] = []

    def run(self, items: list[_LoadItem]) -> list[dict[str, Any]]:
        added: list[str] = []
        try:
            for item in items:
                self._stage(item)
            for item in items:
                self._register(item, added)
            ids = [self.images.create(json.loads(item.raw_config), raw=item.raw_config) for item in items]
        except BaseException:
            self._discard(added)
            raise
        finally:
            for path in self.staged.values():
                if os.path.exists(path):
                    os.unlink(path)
        for item, image_id in zip(items, ids):
            self._tag(item, image_id)
        return self.messages

    def _stage(self, item: _LoadItem) -> None:
        for i, (chain, layer) in enumerate(zip(chain_ids(item.diff_ids), item.layers)):
            if chain not in self.staged and not self.layers.exists(chain):
                self.staged[chain] = self._verified_layer(layer, item.diff_ids[i], i)

    def _verified_layer(self, layer: _LayerRef, diff_id: str, index: int) -> str:
        fd, path = tempfile.mkstemp(dir=self.tmp_dir, prefix="load-layer-")
        try:
            with os.fdopen(fd, "wb") as out, self.archive.open(layer.path) as raw:
                src, dst = _Hashing(raw), _Hashing(out)
                decompress_to(src, dst)  # type: ignore[arg-type]
            if layer.digest and src.digest() != layer.digest:
                raise InvalidParameter(f"invalid archive: layer blob {layer.path} does not match its digest")
            if dst.digest() != diff_id:
                raise InvalidParameter(f'invalid diffID for layer {index}: expected "{diff_id}", got "{dst.digest()}"')
        except _CORRUPT as e:
            os.unlink(path)
            raise InvalidParameter(f"invalid layer {index} ({layer.path}): {e}") from e
        except BaseException:
            os.unlink(path)
            raise
        if not self.quiet:
            self.messages.append(_progress(diff_id, dst.size))
        return path

    def _register(self, item: _LoadItem, added: list[str]) -> None:
        """Register the staged layers of `item`, noting each new chain in `added` at once."""
        parent = ""
        for chain in chain_ids(item.diff_ids):
            tar_path = self.staged.pop(chain, None)
            if tar_path is not None:
                self.layers.register(tar_path, parent)
                added.append(chain)
            parent = chain

    def _discard(self, chains: list[str]) -> None:
        if chains:
            self.layers.remove_unreferenced(set(self.layers.chain_ids()) - set(chains))

    def _tag(self, item: _LoadItem, image_id: str) -> None:
        for ref in item.refs:
            try:
                previous = self.images.resolve(str(ref))
            except NotFound:
                previous = image_id
            if previous != image_id:
                self._say(f"The image {ref.familiar()} already exists, renaming the old one with ID {previous} "
                          "to empty string\n")
            self.images.set_tag(image_id, str(ref))
            self._say(f"Loaded image: {ref.familiar()}\n")
        if not item.refs:
            self._say(f"Loaded image ID: {image_id}\n")
        self.events.publish("image", "load", image_id, {"name": image_id})

    def _say(self, line: str) -> None:
        self.messages.append({"stream": line})


class _Hashing:
    """Pass-through reader/writer that digests the bytes and counts them."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self._add(data)
        return data

    def write(self, data: bytes) -> int:
        self._add(data)
        return self.f.write(data)

    def readable(self) -> bool:
        return True

    def _add(self, data: bytes) -> None:
        self.h.update(data)
        self.size += len(data)

    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def _progress(diff_id: str, size: int) -> dict[str, Any]:
    """Docker's final "Loading layer" progress line for one layer."""
    human = human_size(size)
    return {"status": "Loading layer", "progressDetail": {"current": size, "total": size},
            "progress": f"[{'=' * 49}>]  {human}/{human}", "id": diff_id[7:19]}

