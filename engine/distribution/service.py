"""`docker pull`, `docker push` and `docker login` against v2 registries.

Pull resolves the manifest first (so a missing image or bad credentials is an
HTTP error, as with dockerd), then streams Docker's JSON progress messages
while at most three layers download concurrently. Each is decompressed as it
arrives into a temp tar, hashing both forms in the same pass; the blob's size
and digest and the tar's diff_id are verified before the tar is extracted
(still concurrently) into a private staging directory, and layers are then
committed in chain order. The image row and its tags are written last, so an
interrupted pull never shows a half image; whatever it left in the temp dir
or as staging directories is removed by the daemon's start-up GC.

The compressed digest each layer has in a registry is remembered
(`layer_blobs`), so pushing a pulled or already pushed layer is a HEAD
("Layer already exists") or a cross-repository mount, not an upload.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import queue
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from engine.config import EngineConfig
from engine.distribution.plan import Platform, PullPlan, PushPlan
from engine.distribution.progress import Throttle, progress, status, update
from engine.distribution.registry import (
    CHUNK,
    DOCKER_HUB,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_MANIFEST,
    AuthConfig,
    Registry,
    RegistryError,
)
from engine.distribution.tls import is_insecure, registry_host
from engine.distribution.transfer import BlobReader, HashWriter, decompress
from engine.errors import EngineError, InvalidParameter, NotFound
from engine.events import EventBus
from engine.image.layers import LayerStore, StagedLayer, chain_ids
from engine.image.service import ImageService, short
from engine.store.db import BlobStore, MetaStore
from pydock_common import reference
from pydock_common.reference import Reference

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


MAX_DOWNLOADS = 3  # dockerd's max-concurrent-downloads
MAX_UPLOADS = 5  # dockerd's max-concurrent-uploads
GZIP_TYPES = (MEDIA_DOCKER_LAYER, "application/vnd.oci.image.layer.v1.tar+gzip")
LAYER_TYPES = GZIP_TYPES + ("application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar")
log = logging.getLogger(__name__)
Message = dict[str, Any]
Report = Callable[[Message], None]




# ---- plans ------------------------------------------------------------


class DistributionService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, blobs: BlobStore, layers: LayerStore,
                 images: ImageService, events: EventBus) -> None:
        self.cfg = cfg
        self.meta = meta
        meta.ensure_schema(BLOB_LOCATION_SCHEMA)
        self.blobs = blobs
        self.layers = layers
        self.images = images
        self.events = events

    def registry(self, host: str, auth: AuthConfig, mirror: str = "") -> Registry:
        """A session with `host`, or with a mirror of it (a URL: its scheme is the one to use)."""
        address = urllib.parse.urlsplit(mirror).netloc if mirror else host
        return Registry(host, auth, is_insecure(address, self.cfg.insecure_registries), self.cfg.certs_dir, mirror)

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
        """Fetch and check the manifest; every failure here is an HTTP error, before any progress.

        Docker Hub images are looked for on the registry mirrors first; as
        with dockerd, any failure there moves on to the next endpoint.
        """
        ref = reference.parse(name)
        want = Platform.parse(platform)
        mirrors = self.cfg.registry_mirrors if ref.domain == DOCKER_HUB else ()
        for mirror in mirrors:
            try:
                return self._resolve_on(self.registry(ref.domain, auth, mirror), ref, want)
            except EngineError as e:
                log.info("Attempting next endpoint for pull after error: %s", e.message)
        return self._resolve_on(self.registry(ref.domain, auth), ref, want)

    def _resolve_on(self, reg: Registry, ref: Reference, want: Platform) -> PullPlan:
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
            if not self.images.exists(image_id):
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
        with self.meta.transaction():
            previous = self.images.tagged_image(norm)
            self.images.set_tag(image_id, digest_ref)
            if ref.tag:
                self.images.set_tag(image_id, norm)
        self.events.publish("image", "pull", ref.familiar(), {"name": ref.familiar_repository})
        return previous != image_id

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
        jobs: list[Future[StagedLayer] | None] = []
        try:
            for desc, chain, diff_id in zip(descs, chains, diff_ids):
                if self.layers.exists(chain) or self.blobs.exists(diff_id):
                    yield update(short(desc["digest"]), "Already exists")
                    jobs.append(None)
                    continue
                yield update(short(desc["digest"]), "Pulling fs layer")
                jobs.append(pool.submit(self._download, plan, desc, diff_id, reports.put, stopped))
            for job, desc in list(zip(jobs, descs))[MAX_DOWNLOADS:]:
                if job is not None and not job.running() and not job.done():
                    yield update(short(desc["digest"]), "Waiting")
            parent = ""
            for job, desc, chain, diff_id in zip(jobs, descs, chains, diff_ids):
                if job is not None:
                    yield from self._drain(job, reports, cancel)
                    yield from self._commit(plan, job.result(), desc, parent)
                elif not self.layers.exists(chain):
                    self._register_local(diff_id, parent)
                parent = chain
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            for job in jobs:
                if job is not None and job.done() and not job.cancelled() and job.exception() is None:
                    self.layers.discard(job.result())  # a no-op for committed layers

    @staticmethod
    def _drain(job: Future[Any], reports: queue.Queue[Message], cancel: threading.Event) -> Iterator[Message]:
        """Forward the workers' progress until `job` is done."""
        while True:
            try:
                yield reports.get(timeout=0.05)
                continue
            except queue.Empty:
                pass
            if cancel.is_set():
                raise RegistryError("context canceled")
            if job.done():
                job.result()  # re-raises the worker's error
                while not reports.empty():
                    yield reports.get_nowait()
                return

    def _download(self, plan: PullPlan, desc: dict[str, Any], diff_id: str, report: Report,
                  stopped: Callable[[], bool]) -> StagedLayer:
        """Fetch one blob, decompressing and hashing both forms as it arrives, and stage it.

        One pass writes only the uncompressed tar; the blob's digest and size
        and the tar's diff ID are all checked before extraction, which runs
        here, concurrently with the other downloads, into a private directory
        that `_commit` later makes visible in chain order.
        """
        digest, size, id_ = desc["digest"], int(desc.get("size", -1)), short(desc["digest"])
        fd, tar_path = tempfile.mkstemp(dir=self.cfg.tmp_dir, prefix="pull-tar-")
        try:
            with os.fdopen(fd, "wb") as out:
                blob = BlobReader(plan, digest, size, lambda n: report(progress(id_, "Downloading", n, size)),
                                   stopped)
                tar = HashWriter(out)
                error = decompress(blob, tar)
                blob.drain()
                report(update(id_, "Verifying Checksum"))
                if blob.digest != digest or (size >= 0 and blob.size != size):
                    raise RegistryError(f"filesystem layer verification failed for digest {digest}")
                report(update(id_, "Download complete"))
                if error:
                    raise RegistryError(f"failed to register layer: invalid compressed layer {digest}: {error}")
                if tar.digest != diff_id:
                    raise RegistryError(f"failed to register layer: layer {digest} has diff ID {tar.digest}, "
                                        f"the image configuration says {diff_id}")
                out.flush()
                os.fsync(out.fileno())  # here rather than in the ordered commit
        except BaseException:
            _unlink(tar_path)
            raise
        return self.layers.stage(tar_path, diff_id)

    def _commit(self, plan: PullPlan, staged: StagedLayer, desc: dict[str, Any], parent: str) -> Iterator[Message]:
        id_ = short(desc["digest"])
        size = int(desc.get("size", 0))
        yield progress(id_, "Extracting", size, size)
        self.layers.commit(staged, parent)
        self._remember(staged.diff_id, desc["digest"], desc["mediaType"], size, plan.ref.repository)
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
            tags = [(norm[len(repo.repository) + 1:], image_id)
                    for norm, image_id in self.images.repository_tags(repo.repository)
                    if "/" not in norm[len(repo.repository) + 1:]]
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
        self.images.set_tag(image_id, f"{plan.repo.repository}@{digest}")
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
                throttle = Throttle()

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
                writer = HashWriter(out)
                with gzip.GzipFile(filename="", fileobj=writer, mode="wb", compresslevel=6, mtime=0) as gz:
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
