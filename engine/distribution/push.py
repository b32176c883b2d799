"""`docker push` to a v2 registry.

Up to five layers go at once. A layer whose compressed blob the repository
already has is a HEAD ("Layer already exists"), one that another repository
of the same registry has is a cross-repository mount; only the rest are
gzipped (reproducibly, so the digest is stable) and uploaded. The manifest
goes last, and its digest becomes the image's repo digest.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.config import EngineConfig
from engine.distribution.locations import BlobLocation, BlobLocations
from engine.distribution.plan import PushPlan
from engine.distribution.progress import Message, Throttle, progress, status, update
from engine.distribution.registry import (
    CHUNK,
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_MANIFEST,
    AuthConfig,
    Registry,
)
from engine.distribution.transfer import HashWriter, drain, either, unlink_quietly
from engine.errors import EngineError, InvalidParameter, NotFound
from engine.events import EventBus
from engine.image.service import ImageService, short
from engine.store.db import BlobStore
from pydock_common import reference
from pydock_common.reference import Reference

MAX_UPLOADS = 5  # dockerd's max-concurrent-uploads
# the layer blobs a push can reuse: what it would upload itself (gzip)
GZIP_TYPES = (MEDIA_DOCKER_LAYER, "application/vnd.oci.image.layer.v1.tar+gzip")
Report = Callable[[Message], None]


class Pusher:
    def __init__(self, cfg: EngineConfig, registry: Callable[[str, AuthConfig], Registry], blobs: BlobStore,
                 images: ImageService, locations: BlobLocations, events: EventBus) -> None:
        self.cfg = cfg
        self.registry = registry
        self.blobs = blobs
        self.images = images
        self.locations = locations
        self.events = events

    def resolve(self, name: str, tag: str, auth: AuthConfig) -> PushPlan:
        """The tags to push (all of the repository's without `tag`); a missing image is an HTTP error."""
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
        stopped = either(stop, cancel)
        descs: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(MAX_UPLOADS, thread_name_prefix="pydock-push") as pool:
            jobs = [pool.submit(self._push_layer, plan, d, reports.put, stopped) for d in diff_ids]
            for d, job in list(zip(diff_ids, jobs))[MAX_UPLOADS:]:
                if not job.running() and not job.done():
                    yield update(short(d), "Waiting")
            try:
                for d, job in zip(diff_ids, jobs):
                    yield from drain(job, reports, cancel)
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
        known = self.locations.known(diff_id, GZIP_TYPES)
        for loc in known:
            if loc.repository == repo.repository and reg.blob_exists(repo.path, loc.blob_digest,
                                                                       (f"repository:{repo.path}:pull,push",)):
                report(update(id_, "Layer already exists"))
                return _layer_desc(loc.blob_digest, loc.size)
        for loc in known:
            if loc.repository != repo.repository and loc.repository.startswith(repo.domain + "/"):
                from_path = loc.repository[len(repo.domain) + 1:]
                try:
                    mounted = reg.mount_blob(repo.path, loc.blob_digest, from_path)
                except EngineError:
                    mounted = False
                if mounted:
                    self.locations.remember(diff_id, BlobLocation(loc.blob_digest, loc.media_type, loc.size,
                                                                  repo.repository))
                    report(update(id_, f"Mounted from {from_path}"))
                    return _layer_desc(loc.blob_digest, loc.size)
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
            unlink_quietly(gz)
        self.locations.remember(diff_id, BlobLocation(digest, MEDIA_DOCKER_LAYER, size, repo.repository))
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
            unlink_quietly(tmp)
            raise


def _layer_desc(digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": MEDIA_DOCKER_LAYER, "size": size, "digest": digest}
