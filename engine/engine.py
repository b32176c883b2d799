"""Composition root: builds the engine's services and wires them together.

This is the only place that knows every service; each service receives just
the collaborators it needs, so they can be tested and replaced one by one.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

from engine.build.builder import BuilderService
from engine.build.cache import BuildCache
from engine.cluster import Cluster
from engine.config import SPARES_NAME, EngineConfig
from engine.container.archive import ArchiveService
from engine.container.exec import ExecService
from engine.container.service import ContainerService
from engine.container.stats import StatsService
from engine.distribution.locations import BlobLocations
from engine.distribution.registry import AuthConfig
from engine.distribution.service import DistributionService
from engine.events import EventBus
from engine.image.archive import ImageArchive
from engine.image.layers import INIT_LAYER, LayerStore
from engine.image.service import ImageService
from engine.image.store import ImageStore
from engine.linux.mounts import is_mountpoint, keep_in_memory
from engine.linux.overlay import Overlay, for_driver
from engine.network.bridge import BridgeDriver
from engine.network.driver import NetworkDriver
from engine.network.service import NetworkService
from engine.openstreams import OpenStreams
from engine.runtime.base import ContainerRuntime
from engine.runtime.rootfs import OverlayRootFS, RootFS
from engine.runtime.runc import Runtime
from engine.store.db import BlobStore, MetaStore
from engine.store.rootlock import DataRootLock
from engine.system import SystemService
from engine.volume.service import VolumeService

log = logging.getLogger(__name__)
# how long shutting down waits for open streams (logs -f, events, ...) to end
STREAMS_GRACE = 5.0


def _keep_exec_root_in_memory(exec_root: str) -> None:
    """The exec root on a tmpfs, as /run is on most hosts, where this host keeps /run on disk: every start
    writes files there (the monitor's sockets and state, the OCI runtime's), which on disk cost milliseconds
    of a `docker run` (README, Performance), and none of it may outlive the boot anyway. The mount stays
    when the daemon stops: its containers' monitors keep working there. A rootless daemon's exec root is
    in the user's runtime directory, a tmpfs already."""
    try:
        if keep_in_memory(exec_root, 0o710):
            log.info("exec root %s: on disk here, a tmpfs mounted on it keeps it in memory", exec_root)
    except OSError as e:  # not allowed to mount (a container without CAP_SYS_ADMIN): it stays on disk
        log.warning("keeping the exec root %s in memory: %s", exec_root, e)


class Engine:
    def __init__(self, cfg: EngineConfig, program: str = "pydock", runtime: ContainerRuntime | None = None,
                 rootfs: RootFS | None = None, network_driver: NetworkDriver | None = None) -> None:
        """`program` names this engine's host in the data root's lock, for the error a second engine gets.

        `runtime`, `rootfs` and `network_driver` replace runc, overlayfs and the kernel's networking: tests
        without root pass `engine.runtime.fake.FakeRuntime`, `engine.runtime.rootfs.CopiedRootFS` and
        `engine.network.fakedriver.FakeNetworkDriver`; None means the real ones.
        """
        self.root_lock = DataRootLock(cfg.data_root, program)
        overlay = for_driver(cfg.storage_driver)  # builds and volume copy-ups stack layers too
        try:
            if runtime is None and not cfg.rootless:
                _keep_exec_root_in_memory(cfg.exec_root)
            self._build(cfg, runtime or Runtime(cfg), rootfs or OverlayRootFS(overlay),
                        network_driver or BridgeDriver(cfg.data_root, cfg.engine_netns), overlay)
        except BaseException:
            self.root_lock.release()
            raise

    def _build(self, cfg: EngineConfig, runtime: ContainerRuntime, rootfs: RootFS,
               network_driver: NetworkDriver, overlay: Overlay) -> None:
        cfg.ensure_dirs()
        self.cfg = cfg
        self.meta = MetaStore(cfg.db_path)
        self.blobs = BlobStore(cfg.blobs_dir, cfg.tmp_dir)
        self.events = EventBus()
        self.streams = OpenStreams()
        self.layers = LayerStore(cfg.layers_dir, self.meta, self.blobs, rootfs.layer_owner)
        # images and volumes ask which containers use them, and containers need both: they reach the
        # container service through callables used only once an operation runs
        self.images = ImageService(ImageStore(self.meta), self.blobs, self.layers, self.events, cfg.tmp_dir,
                                   lambda image_id: self.containers.image_usage(image_id), cfg.storage_driver)
        self.image_archive = ImageArchive(self.images, self.layers, self.blobs, self.events, cfg.tmp_dir)
        self.volumes = VolumeService(cfg, self.meta, self.events, lambda: self.containers.all_records(), overlay)
        self.distribution = DistributionService(cfg, BlobLocations(self.meta), self.blobs, self.layers, self.images,
                                                self.events)
        self.runtime = runtime
        # networking and containers need each other: the network service is built first and reaches the
        # container service through a callable it calls only when an operation runs
        self.network = NetworkService(cfg, self.meta, self.events, lambda: self.containers, network_driver)
        # healthcheck probes are execs, and the exec service is built on the container service
        self.containers = ContainerService(cfg, self.meta, self.images, self.layers, self.runtime, self.events,
                                           self.network, self.volumes, rootfs,
                                           lambda cid, cmd, timeout: self.execs.probe(cid, cmd, timeout))
        self.system = SystemService(cfg, self.meta, self.images, self.layers, self.containers, self.events)
        self.cluster = Cluster()
        self.stats = StatsService(self.containers, self.runtime)
        self.execs = ExecService(self.containers, self.runtime, self.events)
        self.archive = ArchiveService(cfg, self.containers, self.images, self.layers)
        self.builder = BuilderService(cfg, BuildCache(self.meta, self.images.exists), self.images, self.layers,
                                      self.containers, self._pull_for_build, overlay)

    def _pull_for_build(self, ref: str, platform: str, cancel: threading.Event) -> Iterator[dict[str, Any]]:
        """FROM of an image that is not local (or `--pull`): an anonymous registry pull."""
        yield from self.distribution.pull(self.distribution.resolve_pull(ref, AuthConfig(), platform), cancel)

    def start(self) -> None:
        """Recover from whatever the previous daemon left: temp files, half layers, running containers."""
        self.builder.release_mounts()
        for name in os.listdir(self.cfg.tmp_dir):
            path = os.path.join(self.cfg.tmp_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        for name in os.listdir(self.cfg.layers_dir):
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(self.cfg.layers_dir, name), ignore_errors=True)
        self._collect_orphans()
        self.network.start()
        self.containers.restore()
        self.network.reconcile()

    def _collect_orphans(self) -> None:
        """Remove what a crash between "write data" and "commit the row" can leave behind.

        Every store writes its files before the SQLite row that references
        them, so files without a row are garbage and rows never dangle.
        """
        self.images.gc_layers()
        known_layers = self.layers.cache_ids()
        for name in os.listdir(self.cfg.layers_dir):
            if name not in known_layers and name not in ("empty", INIT_LAYER):
                shutil.rmtree(os.path.join(self.cfg.layers_dir, name), ignore_errors=True)
        referenced = set(self.images.ids()) | self.layers.diff_ids()
        for digest in self.blobs.digests():
            if digest not in referenced:
                self.blobs.delete(digest)
        self.volumes.collect_orphans()
        known_containers = self.containers.ids()
        self.runtime.collect_orphans(known_containers)
        for name in os.listdir(self.cfg.containers_dir):
            if name in known_containers or name == SPARES_NAME:  # the spares are emptied as the engine is built
                continue
            merged = os.path.join(self.cfg.containers_dir, name, "merged")
            self.containers.rootfs.unmount(merged)  # a removal's, which unmounts after its commit (Running._remove_locked)
            if not is_mountpoint(merged):  # never remove files through a mount
                shutil.rmtree(os.path.dirname(merged), ignore_errors=True)
        for name in os.listdir(self.cfg.containers_run_dir):
            if name not in known_containers:
                shutil.rmtree(os.path.join(self.cfg.containers_run_dir, name), ignore_errors=True)

    def close(self) -> None:
        """End the open streams first: they read the store, which closes last."""
        left = self.streams.end_all(STREAMS_GRACE)
        if left:
            log.warning("%d API streams still open after %.0f s; closing the store anyway", left, STREAMS_GRACE)
        self.containers.close()
        self.network.close()
        self.runtime.close()
        self.meta.close()
        self.root_lock.release()
