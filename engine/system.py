"""What `docker version`, `docker info` and `docker system df` show of the engine, as records (their JSON is
built at the API edge, engine/api/system_json.py)."""
from __future__ import annotations

import collections
import os
import subprocess
from dataclasses import dataclass

from engine.config import EngineConfig
from engine.container.service import ContainerService
from engine.container.stats import cgroup_version
from engine.distribution.tls import DEFAULT_INSECURE_CIDRS
from engine.events import EventBus
from engine.image.layers import LayerStore, chain_ids
from engine.image.service import ImageService
from engine.image.views import ImageSummary
from engine.store.db import MetaStore


class SystemService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, images: ImageService, layers: LayerStore,
                 containers: ContainerService, events: EventBus) -> None:
        self.cfg = cfg
        self.meta = meta
        self.images = images
        self.layers = layers
        self.containers = containers
        self.events = events
        self.daemon_id: str = meta.get_kv("daemon_id") or os.urandom(16).hex()
        meta.set_kv("daemon_id", self.daemon_id)
        self._runc_version = ""

    def runc_version(self) -> str:
        if not self._runc_version:
            try:
                out = subprocess.run([self.cfg.runc, "--version"], check=False, capture_output=True, text=True,
                                     timeout=10).stdout
                self._runc_version = out.splitlines()[0].split()[-1] if out else "unknown"
            except (OSError, subprocess.SubprocessError):
                self._runc_version = "unknown"
        return self._runc_version

    def facts(self) -> SystemFacts:
        """What `docker info` shows that only the engine knows."""
        states = [c.state for c in self.containers.all_records()]
        osname = "Linux"
        try:
            with open("/etc/os-release") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        osname = line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return SystemFacts(
            self.daemon_id, len(states), sum(1 for s in states if s.running and not s.paused),
            sum(1 for s in states if s.paused), len(self.images.ids()), self._limits(), self.events.listeners(),
            "cgroupfs" if self.cfg.cgroup_parent else "none", cgroup_version(), osname, self.cfg.data_root,
            self.cfg.runtimes, self.cfg.chosen_runtime, self.runc_version(), self.cfg.rootless, self.cfg.storage_driver,
            self._registry_config(), self._warnings())

    def _limits(self) -> Limits:
        """Which limits containers can get: all with cgroups of our own, the delegated controllers' in rootless mode."""
        have = self.cfg.cgroup_controllers
        if not self.cfg.cgroup_parent:
            have = frozenset()

        def has(controller: str) -> bool:
            return have is None or controller in have
        return Limits(memory=has("memory"), cpu=has("cpu"), cpuset=has("cpuset"), pids=has("pids"))

    def _warnings(self) -> list[str]:
        """dockerd's wording for a rootless daemon without cgroups, and what setting up rootless mode found."""
        out = [f"WARNING: {w}" for w in self.cfg.warnings]
        if self.cfg.rootless and not self.cfg.cgroup_parent:
            out.append("WARNING: Running in rootless-mode without cgroups. " + (
                "To enable cgroups in rootless-mode, you need to boot the system in cgroup v2 mode."
                if cgroup_version() == "1" else "Systemd is required to enable cgroups in rootless-mode."))
        return out

    def _registry_config(self) -> RegistrySettings:
        """As dockerd: CIDR entries (and loopback) under InsecureRegistryCIDRs, host:port entries as index configs."""
        cidrs, hosts = list(DEFAULT_INSECURE_CIDRS), list[str]()
        for entry in self.cfg.insecure_registries:
            (cidrs if "/" in entry else hosts).append(entry)
        return RegistrySettings(cidrs, hosts, list(self.cfg.registry_mirrors))

    def df(self) -> DiskUsage:
        """`docker system df`'s images and layers (the API adds containers and volumes from their services).

        As dockerd counts it: the images `docker images` lists (intermediate
        build images are part of their children), each layer counted once in
        LayersSize however many images share it, and SharedSize the bytes of an
        image's layers another listed image uses too; the CLI derives the
        reclaimable space from these.
        """
        images = self.images.summaries()
        sizes = self.layers.sizes()
        chains = {i.record.id: chain_ids(i.record.config().get("rootfs", {}).get("diff_ids") or []) for i in images}
        users = collections.Counter(c for cs in chains.values() for c in set(cs))
        return DiskUsage(sum(sizes.get(c, 0) for c in users), [
            ImageUsage(i, sum(len(x) for x in self.containers.image_usage(i.record.id)),
                       sum(sizes.get(c, 0) for c in chains[i.record.id] if users[c] > 1)) for i in images])


@dataclass(frozen=True)
class Limits:
    """Which limits containers can get: all with cgroups of the daemon's own, the delegated ones rootless."""

    memory: bool
    cpu: bool
    cpuset: bool
    pids: bool


@dataclass(frozen=True)
class RegistrySettings:
    """The daemon's registry options as dockerd sorts them: CIDR entries (with loopback's), insecure hosts,
    mirrors."""

    insecure_cidrs: list[str]
    insecure_hosts: list[str]
    mirrors: list[str]


@dataclass(frozen=True)
class SystemFacts:
    daemon_id: str
    containers: int
    running: int
    paused: int
    images: int
    limits: Limits
    event_listeners: int
    cgroup_driver: str
    cgroup_version: str
    os_name: str
    data_root: str
    runtimes: dict[str, str]  # the OCI runtimes containers may choose: name -> binary
    default_runtime: str
    runc_version: str
    rootless: bool
    storage_driver: str
    registry: RegistrySettings
    warnings: list[str]


@dataclass(frozen=True)
class ImageUsage:
    image: ImageSummary
    containers: int   # how many containers use it
    shared_size: int  # bytes of its layers another listed image shares


@dataclass(frozen=True)
class DiskUsage:
    layers_size: int  # every layer counted once
    images: list[ImageUsage]
