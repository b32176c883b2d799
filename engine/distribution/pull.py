"""`docker pull` from a v2 registry.

The manifest is resolved first (so a missing image or bad credentials is an
HTTP error, as with dockerd), then Docker's JSON progress messages stream
while at most three layers download concurrently. Each is decompressed as it
arrives into a temp tar, hashing both forms in the same pass; the blob's size
and digest and the tar's diff_id are verified before the tar is extracted
(still concurrently) into a private staging directory, and layers are then
committed in chain order. The image row and its tags are written last, so an
interrupted pull never shows a half image; whatever it left in the temp dir
or as staging directories is removed by the daemon's start-up GC.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from engine.config import EngineConfig
from engine.distribution.errors import RegistryError
from engine.distribution.locations import BlobLocation, BlobLocations
from engine.distribution.plan import Platform, PullPlan
from engine.distribution.progress import Message, progress, status, update
from engine.distribution.registry import (
    CHUNK,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_DOCKER_LAYER,
    AuthConfig,
    Registry,
)
from engine.distribution.tls import DOCKER_HUB
from engine.distribution.transfer import BlobReader, HashWriter, decompress, drain, either, unlink_quietly
from engine.errors import EngineError, NotFound
from engine.events import EventBus
from engine.ids import DiffID
from engine.image.layers import LayerStore, StagedLayer, chain_ids
from engine.image.service import ImageService, short
from engine.store.db import BlobStore
from pydock_common import reference
from pydock_common.reference import Reference

MAX_DOWNLOADS = 3  # dockerd's max-concurrent-downloads
LAYER_TYPES = (MEDIA_DOCKER_LAYER, "application/vnd.oci.image.layer.v1.tar+gzip",
               "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar")
log = logging.getLogger(__name__)
Report = Callable[[Message], None]
# a session with a registry host, optionally through a mirror URL
RegistryFn = Callable[[str, AuthConfig, str], Registry]


class Puller:
    def __init__(self, cfg: EngineConfig, registry: RegistryFn, blobs: BlobStore, layers: LayerStore,
                 images: ImageService, locations: BlobLocations, events: EventBus) -> None:
        self.cfg = cfg
        self.registry = registry
        self.blobs = blobs
        self.layers = layers
        self.images = images
        self.locations = locations
        self.events = events

    def resolve(self, name: str, auth: AuthConfig, platform: str = "") -> PullPlan:
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
        return self._resolve_on(self.registry(ref.domain, auth, ""), ref, want)

    def _resolve_on(self, reg: Registry, ref: Reference, want: Platform) -> PullPlan:
        try:
            raw, media, digest = _manifest(reg, ref, ref.digest or ref.tag)
            manifest = json.loads(raw)
            if media in INDEX_TYPES:
                desc = next((d for d in manifest.get("manifests") or [] if want.matches(d.get("platform") or {})),
                            None)
                if desc is None:
                    raise NotFound(f"no matching manifest for {want} in the manifest list entries")
                raw, media, _ = _manifest(reg, ref, desc["digest"])
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
        reg = self.registry(ref.domain, auth, "")
        try:
            tags = reg.tags(ref.path)
        finally:
            reg.close()
        for tag in sorted(tags):
            if cancel.is_set():
                raise RegistryError("context canceled")
            yield from self.pull(self.resolve(f"{ref.repository}:{tag}", auth, platform), cancel)

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
        before = self.images.set_tags(image_id, [digest_ref] + ([norm] if ref.tag else []))
        self.events.publish("image", "pull", ref.familiar(), {"name": ref.familiar_repository})
        return before.get(norm) != image_id

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
        stopped = either(stop, cancel)
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
                    yield from drain(job, reports, cancel)
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
            unlink_quietly(tar_path)
            raise
        return self.layers.stage(tar_path, DiffID(diff_id))  # verified above

    def _commit(self, plan: PullPlan, staged: StagedLayer, desc: dict[str, Any], parent: str) -> Iterator[Message]:
        id_ = short(desc["digest"])
        size = int(desc.get("size", 0))
        yield progress(id_, "Extracting", size, size)
        self.layers.commit(staged, parent)
        self.locations.remember(staged.diff_id, BlobLocation(desc["digest"], desc["mediaType"], size,
                                                             plan.ref.repository))
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
            unlink_quietly(tmp)


def _manifest(reg: Registry, ref: Reference, target: str) -> tuple[bytes, str, str]:
    try:
        return reg.get_manifest(ref.path, target)
    except NotFound as e:
        name = f"{ref.repository}@{target}" if target.startswith("sha256:") else f"{ref.repository}:{target}"
        detail = e.message.split(": ", 1)[-1]
        raise NotFound(f"manifest for {name} not found: {detail}") from None
