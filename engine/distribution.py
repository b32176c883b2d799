"""`docker pull`, `docker push` and `docker login` against v2 registries.

Pull resolves the manifest first (so a missing image or bad credentials is an
HTTP error, as with dockerd), then streams Docker's JSON progress messages
while at most three layers download concurrently into temp files, each
hashed as it arrives and verified for size and digest before it is
decompressed, checked against the config's diff_id and registered in chain
order. The image row and its tags are written last, so an interrupted pull
never shows a half image; whatever it left in the temp dir or as unreferenced
layers is removed by the daemon's start-up GC.

The compressed digest each layer has in a registry is remembered
(`layer_blobs`), so pushing a pulled or already pushed layer is a HEAD
("Layer already exists") or a cross-repository mount, not an upload.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import queue
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator

import requests

from . import reference
from .config import EngineConfig
from .errors import EngineError, InvalidParameter, NotFound
from .events import EventBus
from .images import ARCH, ImageService, decompress_to, short
from .layers import LayerStore, chain_ids
from .reference import Reference
from .registry import (
    CHUNK,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_MANIFEST,
    AuthConfig,
    Registry,
    RegistryError,
    RegistryUnreachable,
    Retrying,
    is_insecure,
    registry_host,
)
from .store import BlobStore, MetaStore

MAX_DOWNLOADS = 3  # dockerd's max-concurrent-downloads
MAX_UPLOADS = 5  # dockerd's max-concurrent-uploads
GZIP_TYPES = (MEDIA_DOCKER_LAYER, "application/vnd.oci.image.layer.v1.tar+gzip")
LAYER_TYPES = GZIP_TYPES + ("application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar")
PROGRESS_INTERVAL = 0.1
Message = dict[str, Any]
Report = Callable[[Message], None]


# ---- Docker's JSON progress messages ---------------------------------
def human_size(n: float) -> str:
    """go-units HumanSize: decimal units, four significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    """The `progress` string dockerd renders (terminal width > 110, no time estimate)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * (50 - pct) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def status(text: str, id_: str = "") -> Message:
    return {"status": text, "id": id_} if id_ else {"status": text}


def update(id_: str, text: str) -> Message:
    return {"status": text, "progressDetail": {}, "id": id_}


def progress(id_: str, text: str, current: int, total: int) -> Message:
    return {"status": text, "progressDetail": {"current": current, "total": total},
            "progress": progress_bar(current, total), "id": id_}


# ---- platforms --------------------------------------------------------
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str
    variant: str = ""

    @classmethod
    def parse(cls, spec: str) -> Platform:
        if not spec:
            return cls("linux", ARCH)
        parts = spec.lower().split("/")
        if len(parts) > 3 or not all(parts):
            raise InvalidParameter(f'"{spec}": unknown operating system or architecture: invalid argument')
        if len(parts) == 1:
            return cls("linux", _ARCH_ALIASES.get(parts[0], parts[0])) if parts[0] != "linux" else cls("linux", ARCH)
        return cls(parts[0], _ARCH_ALIASES.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else "")

    def matches(self, p: dict[str, Any]) -> bool:
        if p.get("os") != self.os or _ARCH_ALIASES.get(p.get("architecture", ""), p.get("architecture")) != self.arch:
            return False
        if not self.variant:
            return True
        variant = p.get("variant", "") or ("v8" if self.arch == "arm64" else "")
        return variant == self.variant

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.arch, self.variant) if x)


# ---- plans ------------------------------------------------------------
@dataclass
class PullPlan:
    ref: Reference  # normalized, with a tag or a digest
    registry: Registry
    digest: str  # of the manifest the reference names (the index, for multi-platform images)
    manifest: dict[str, Any]  # the single-platform image manifest


@dataclass
class PushPlan:
    repo: Reference  # without tag
    registry: Registry
    tags: list[tuple[str, str]]  # (tag, image ID)


class _HashWriter:
    """A file wrapper that hashes what passes through, so nothing is read twice."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


class _Throttle:
    """Rate-limits progress updates as dockerd's progress reader does."""

    def __init__(self) -> None:
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            return True
        return False


class DistributionService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, blobs: BlobStore, layers: LayerStore,
                 images: ImageService, events: EventBus) -> None:
        self.cfg = cfg
        self.meta = meta
        self.blobs = blobs
        self.layers = layers
        self.images = images
        self.events = events

    def registry(self, host: str, auth: AuthConfig) -> Registry:
        return Registry(host, auth, is_insecure(host, self.cfg.insecure_registries))

    # ---- login ----------------------------------------------------------
    def login(self, auth: AuthConfig) -> dict[str, str]:
        reg = self.registry(registry_host(auth.serveraddress), auth)
        try:
            reg.login()
        finally:
            reg.close()
        return {"IdentityToken": "", "Status": "Login Succeeded"}

    # ---- pull -----------------------------------------------------------
    def resolve_pull(self, name: str, auth: AuthConfig, platform: str = "") -> PullPlan:
        """Fetch and check the manifest; every failure here is an HTTP error, before any progress."""
        ref = reference.parse(name)
        want = Platform.parse(platform)
        reg = self.registry(ref.domain, auth)
        try:
            raw, media, digest = self._manifest(reg, ref, ref.digest or ref.tag)
            manifest = json.loads(raw)
            if media in INDEX_TYPES:
                desc = next((d for d in manifest.get("manifests") or [] if want.matches(d.get("platform") or {})),
                            None)
                if desc is None:
                    raise NotFound(f"no matching manifest for {want} in the manifest list entries")
                raw, media, _ = self._manifest(reg, ref, desc["digest"])
                manifest = json.loads(raw)
            if media not in MANIFEST_TYPES:
                raise RegistryError(f"unsupported manifest media type {media!r} for {ref.familiar()}"
                                    + (" (Docker schema 1 images are not supported)" if "v1+" in media else ""))
        except BaseException:
            reg.close()
            raise
        return PullPlan(ref, reg, digest, manifest)

    def pull_all_tags(self, name: str, auth: AuthConfig, platform: str,
                      cancel: threading.Event) -> Iterator[Message]:
        """`docker pull --all-tags`: each tag of the repository in turn."""
        ref = reference.parse(name, default_tag=False)
        reg = self.registry(ref.domain, auth)
        try:
            tags = reg.tags(ref.path)
        finally:
            reg.close()
        for tag in sorted(tags):
            if cancel.is_set():
                raise RegistryError("context canceled")
            yield from self.pull(self.resolve_pull(f"{ref.repository}:{tag}", auth, platform), cancel)

    @staticmethod
    def _manifest(reg: Registry, ref: Reference, target: str) -> tuple[bytes, str, str]:
        try:
            return reg.get_manifest(ref.path, target)
        except NotFound as e:
            name = f"{ref.repository}@{target}" if target.startswith("sha256:") else f"{ref.repository}:{target}"
            detail = e.message.split(": ", 1)[-1]
            raise NotFound(f"manifest for {name} not found: {detail}") from None

    def pull(self, plan: PullPlan, cancel: threading.Event) -> Iterator[Message]:
        ref = plan.ref
        try:
            yield status(f"Pulling from {ref.path}", ref.tag or ref.digest)
            config_desc = plan.manifest.get("config") or {}
            config_raw = plan.registry.read_blob(ref.path, config_desc.get("digest", ""))
            config = json.loads(config_raw)
            image_id = "sha256:" + hashlib.sha256(config_raw).hexdigest()
            if not self.meta.query_one("SELECT 1 FROM images WHERE id=?", (image_id,)):
                yield from self._pull_layers(plan, config, cancel)
                image_id = self.images.create(config, raw=config_raw)
            updated = self._record_pull(plan, image_id)
        finally:
            plan.registry.close()
        yield status(f"Digest: {plan.digest}")
        verb = "Downloaded newer image for" if updated else "Image is up to date for"
        yield status(f"Status: {verb} {ref.familiar()}")

    def _record_pull(self, plan: PullPlan, image_id: str) -> bool:
        """Tag the pulled image and record its repo digest; True when the reference moved."""
        ref = plan.ref
        norm = str(ref)
        digest_ref = f"{ref.repository}@{plan.digest}"
        with self.meta.transaction() as db:
            row = db.execute("SELECT image_id FROM tags WHERE ref=?", (norm,)).fetchone()
            db.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)", (digest_ref, image_id))
            if ref.tag:
                db.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)", (norm, image_id))
        self.events.publish("image", "pull", ref.familiar(), {"name": ref.familiar_repository})
        return row is None or row["image_id"] != image_id

    def _pull_layers(self, plan: PullPlan, config: dict[str, Any], cancel: threading.Event) -> Iterator[Message]:
        descs = plan.manifest.get("layers") or []
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(descs) != len(diff_ids):
            raise RegistryError("layers from manifest don't match image configuration")
        for d in descs:
            if d.get("mediaType") not in LAYER_TYPES:
                raise RegistryError(f"unsupported layer media type {d.get('mediaType')!r}")
        chains = chain_ids(diff_ids)
        reports: queue.Queue[Message] = queue.Queue()
        stop = threading.Event()
        stopped = _either(stop, cancel)
        pool = ThreadPoolExecutor(MAX_DOWNLOADS, thread_name_prefix="pydock-pull")
        jobs: list[Future[str] | None] = []
        try:
            for desc, chain, diff_id in zip(descs, chains, diff_ids):
                if self.layers.exists(chain) or self.blobs.exists(diff_id):
                    yield update(short(desc["digest"]), "Already exists")
                    jobs.append(None)
                    continue
                yield update(short(desc["digest"]), "Pulling fs layer")
                jobs.append(pool.submit(self._download, plan, desc, reports.put, stopped))
            for job, desc in list(zip(jobs, descs))[MAX_DOWNLOADS:]:
                if job is not None and not job.running() and not job.done():
                    yield update(short(desc["digest"]), "Waiting")
            parent = ""
            for job, desc, chain, diff_id in zip(jobs, descs, chains, diff_ids):
                if job is not None:
                    yield from self._drain(job, reports, cancel)
                    yield from self._extract(plan, job.result(), desc, diff_id, parent)
                elif not self.layers.exists(chain):
                    self._register_local(diff_id, parent)
                parent = chain
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            for job in jobs:
                if job is not None and job.done() and not job.cancelled() and job.exception() is None:
                    _unlink(job.result())

    @staticmethod
    def _drain(job: Future[str], reports: queue.Queue[Message], cancel: threading.Event) -> Iterator[Message]:
        """Forward the downloaders' progress until `job` is done."""
        while True:
            try:
                yield reports.get(timeout=0.05)
                continue
            except queue.Empty:
                pass
            if cancel.is_set():
                raise RegistryError("context canceled")
            if job.done():
                job.result()  # re-raises the download's error
                while not reports.empty():
                    yield reports.get_nowait()
                return

    def _download(self, plan: PullPlan, desc: dict[str, Any], report: Report, stopped: Callable[[], bool]) -> str:
        """Fetch one blob into a temp file, resuming with a Range request after a dropped connection."""
        digest, size, id_ = desc["digest"], int(desc.get("size", -1)), short(desc["digest"])
        fd, tmp = tempfile.mkstemp(dir=self.cfg.tmp_dir, prefix="pull-")
        try:
            with os.fdopen(fd, "wb") as out:
                writer = self._fetch(plan, digest, size, out, lambda n: report(progress(id_, "Downloading", n, size)),
                                     stopped)
            report(update(id_, "Verifying Checksum"))
            if writer.digest != digest or (size >= 0 and writer.size != size):
                raise RegistryError(f"filesystem layer verification failed for digest {digest}")
            report(update(id_, "Download complete"))
            return tmp
        except BaseException:
            _unlink(tmp)
            raise

    @staticmethod
    def _fetch(plan: PullPlan, digest: str, size: int, out: IO[bytes], on_progress: Callable[[int], None],
               stopped: Callable[[], bool]) -> _HashWriter:
        writer = _HashWriter(out)
        retry = Retrying()
        throttle = _Throttle()
        while True:
            try:
                resp = plan.registry.open_blob(plan.ref.path, digest, writer.size)
                if writer.size and resp.status_code == 200:  # no range support: start over
                    out.seek(0)
                    out.truncate()
                    writer = _HashWriter(out)
                with resp:
                    for chunk in resp.iter_content(CHUNK):
                        if stopped():
                            raise RegistryError("context canceled")
                        writer.write(chunk)
                        if size >= 0 and writer.size > size:
                            raise RegistryError(f"filesystem layer verification failed for digest {digest}")
                        if throttle.due():
                            on_progress(writer.size)
                if size < 0 or writer.size >= size:
                    on_progress(writer.size)
                    return writer
                error: Exception = RegistryError(f"short read: expected {size} bytes but got {writer.size}")
            except (requests.RequestException, RegistryUnreachable) as e:
                error = e
            if stopped() or not retry.again():
                raise RegistryError(f"failed to download layer {digest}: {error}")

    def _extract(self, plan: PullPlan, blob_path: str, desc: dict[str, Any], diff_id: str,
                 parent: str) -> Iterator[Message]:
        id_ = short(desc["digest"])
        size = int(desc.get("size", 0))
        yield progress(id_, "Extracting", size, size)
        fd, tar_path = tempfile.mkstemp(dir=self.cfg.tmp_dir, prefix="pull-tar-")
        try:
            with open(blob_path, "rb") as src, os.fdopen(fd, "wb") as out:
                writer = _HashWriter(out)
                try:
                    decompress_to(src, writer)  # type: ignore[arg-type]
                except (OSError, EOFError, ValueError) as e:
                    raise RegistryError(f"failed to register layer: invalid compressed layer {desc['digest']}: "
                                        f"{e}") from None
            _unlink(blob_path)
            if writer.digest != diff_id:
                raise RegistryError(f"failed to register layer: layer {desc['digest']} has diff ID "
                                    f"{writer.digest}, the image configuration says {diff_id}")
            self.layers.register(tar_path, parent)
        finally:
            _unlink(tar_path)
            _unlink(blob_path)
        self._remember(diff_id, desc["digest"], desc["mediaType"], size, plan.ref.repository)
        yield update(id_, "Pull complete")

    def _register_local(self, diff_id: str, parent: str) -> None:
        """A diff we already hold on another parent: stack it again without a download."""
        fd, tmp = tempfile.mkstemp(dir=self.cfg.tmp_dir, prefix="pull-tar-")
        try:
            with os.fdopen(fd, "wb") as out, self.blobs.open(diff_id) as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            self.layers.register(tmp, parent)
        finally:
            _unlink(tmp)

    def _remember(self, diff_id: str, blob: str, media_type: str, size: int, repository: str) -> None:
        with self.meta.transaction() as db:
            db.execute("INSERT OR IGNORE INTO layer_blobs(diff_id, blob_digest, media_type, size, repository) "
                       "VALUES (?,?,?,?,?)", (diff_id, blob, media_type, size, repository))

    # ---- push -----------------------------------------------------------
    def resolve_push(self, name: str, tag: str, auth: AuthConfig) -> PushPlan:
        ref = reference.parse(name, default_tag=False)
        if ref.digest:
            raise InvalidParameter("cannot push a digest reference")
        repo = Reference(ref.domain, ref.path)
        tag = tag or ref.tag
        if tag:
            try:
                tags = [(tag, self.images.resolve(str(Reference(ref.domain, ref.path, tag))))]
            except NotFound:
                tags = []
        else:
            rows = self.meta.query("SELECT ref, image_id FROM tags WHERE ref LIKE ? ORDER BY ref",
                                   (repo.repository + ":%",))
            tags = [(r["ref"][len(repo.repository) + 1:], r["image_id"]) for r in rows
                    if "/" not in r["ref"][len(repo.repository) + 1:]]
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {repo.familiar()}")
        return PushPlan(repo, self.registry(ref.domain, auth), tags)

    def push(self, plan: PushPlan, cancel: threading.Event) -> Iterator[Message]:
        try:
            yield status(f"The push refers to repository [{plan.repo.repository}]")
            for tag, image_id in plan.tags:
                yield from self._push_image(plan, tag, image_id, cancel)
        finally:
            plan.registry.close()

    def _push_image(self, plan: PushPlan, tag: str, image_id: str, cancel: threading.Event) -> Iterator[Message]:
        config_raw = self.blobs.read(image_id)
        diff_ids = list(dict.fromkeys((json.loads(config_raw).get("rootfs") or {}).get("diff_ids") or []))
        for d in diff_ids:
            yield update(short(d), "Preparing")
        reports: queue.Queue[Message] = queue.Queue()
        stop = threading.Event()
        stopped = _either(stop, cancel)
        descs: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(MAX_UPLOADS, thread_name_prefix="pydock-push") as pool:
            jobs = [pool.submit(self._push_layer, plan, d, reports.put, stopped) for d in diff_ids]
            for d, job in list(zip(diff_ids, jobs))[MAX_UPLOADS:]:
                if not job.running() and not job.done():
                    yield update(short(d), "Waiting")
            try:
                for d, job in zip(diff_ids, jobs):
                    yield from self._drain(job, reports, cancel)
                    descs[d] = job.result()
            finally:
                stop.set()
        layers = [descs[d] for d in (json.loads(config_raw).get("rootfs") or {}).get("diff_ids") or []]
        path = plan.repo.path
        if not plan.registry.blob_exists(path, image_id, (f"repository:{path}:pull,push",)):
            plan.registry.upload_blob(path, image_id, io.BytesIO(config_raw), len(config_raw))
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_DOCKER_MANIFEST,
                    "config": {"mediaType": MEDIA_DOCKER_CONFIG, "size": len(config_raw), "digest": image_id},
                    "layers": layers}
        raw = json.dumps(manifest, indent=3).encode()
        digest = plan.registry.put_manifest(path, tag, raw, MEDIA_DOCKER_MANIFEST)
        with self.meta.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)",
                       (f"{plan.repo.repository}@{digest}", image_id))
        self.events.publish("image", "push", f"{plan.repo.familiar()}:{tag}", {"name": plan.repo.familiar()})
        yield status(f"{tag}: digest: {digest} size: {len(raw)}")
        yield {"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(raw)}}

    def _push_layer(self, plan: PushPlan, diff_id: str, report: Report, stopped: Callable[[], bool]) -> dict[str, Any]:
        """Skip a blob the repository has, mount one it can borrow, else compress and upload."""
        id_ = short(diff_id)
        reg, repo = plan.registry, plan.repo
        known = self.meta.query("SELECT blob_digest, media_type, size, repository FROM layer_blobs "
                                "WHERE diff_id=? AND media_type IN (?, ?)", (diff_id, *GZIP_TYPES))
        for row in known:
            if row["repository"] == repo.repository and reg.blob_exists(repo.path, row["blob_digest"],
                                                                         (f"repository:{repo.path}:pull,push",)):
                report(update(id_, "Layer already exists"))
                return _layer_desc(row["blob_digest"], row["size"])
        for row in known:
            source = row["repository"]
            if source != repo.repository and source.startswith(repo.domain + "/"):
                from_path = source[len(repo.domain) + 1:]
                try:
                    mounted = reg.mount_blob(repo.path, row["blob_digest"], from_path)
                except EngineError:
                    mounted = False
                if mounted:
                    self._remember(diff_id, row["blob_digest"], row["media_type"], row["size"], repo.repository)
                    report(update(id_, f"Mounted from {from_path}"))
                    return _layer_desc(row["blob_digest"], row["size"])
        gz, digest, size = self._compress(diff_id)
        try:
            if reg.blob_exists(repo.path, digest, (f"repository:{repo.path}:pull,push",)):
                report(update(id_, "Layer already exists"))
            else:
                throttle = _Throttle()

                def on_sent(n: int) -> None:
                    if throttle.due() or n == size:
                        report(progress(id_, "Pushing", n, size))

                with open(gz, "rb") as src:
                    reg.upload_blob(repo.path, digest, src, size, on_sent, stopped)
                report(update(id_, "Pushed"))
        finally:
            _unlink(gz)
        self._remember(diff_id, digest, MEDIA_DOCKER_LAYER, size, repo.repository)
        return _layer_desc(digest, size)

    def _compress(self, diff_id: str) -> tuple[str, str, int]:
        """gzip a layer tar reproducibly (no name, mtime 0), so the same layer always gets the same digest."""
        if not self.blobs.exists(diff_id):
            raise NotFound(f"layer {diff_id} does not exist locally")
        fd, tmp = tempfile.mkstemp(dir=self.cfg.tmp_dir, prefix="push-")
        try:
            with os.fdopen(fd, "wb") as out, self.blobs.open(diff_id) as src:
                writer = _HashWriter(out)
                with gzip.GzipFile(filename="", fileobj=writer, mode="wb", compresslevel=6,  # type: ignore[arg-type]
                                   mtime=0) as gz:
                    while chunk := src.read(CHUNK):
                        gz.write(chunk)
            return tmp, writer.digest, writer.size
        except BaseException:
            _unlink(tmp)
            raise


def _either(a: threading.Event, b: threading.Event) -> Callable[[], bool]:
    return lambda: a.is_set() or b.is_set()


def _layer_desc(digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": MEDIA_DOCKER_LAYER, "size": size, "digest": digest}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
