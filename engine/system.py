"""`docker version`, `docker info` and `docker system df` views of the engine."""
from __future__ import annotations

import collections
import os
import platform
import subprocess
from typing import Any

from engine import __version__
from engine.config import EngineConfig
from engine.container.service import ContainerService
from engine.container.stats import cgroup_version, host_memory
from engine.distribution.tls import DEFAULT_INSECURE_CIDRS
from engine.events import EventBus
from engine.image.layers import LayerStore, chain_ids
from engine.image.service import ARCH, ImageService
from engine.store.db import MetaStore
from engine.timeutil import rfc3339_ns
from pydock_common.apiversion import API_VERSION, MIN_API_VERSION


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

    def version(self) -> dict[str, Any]:
        return {
            "Platform": {"Name": "pydock"},
            "Components": [
                {"Name": "Engine", "Version": __version__,
                 "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                             "Os": "linux", "Arch": ARCH, "KernelVersion": platform.release(),
                             "GoVersion": "python" + platform.python_version(), "GitCommit": "", "BuildTime": "",
                             "Experimental": "false"}},
                {"Name": "runc", "Version": self.runc_version(), "Details": {"GitCommit": ""}},
            ],
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": ARCH,
            "KernelVersion": platform.release(), "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        states = [c.state for c in self.containers.all_records()]
        running = sum(1 for s in states if s.running and not s.paused)
        paused = sum(1 for s in states if s.paused)
        osname = "Linux"
        try:
            with open("/etc/os-release") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        osname = line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return {
            "ID": self.daemon_id, "Containers": len(states), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(states) - running - paused,
            "Images": len(self.images.ids()),
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                        "Log": ["json-file"]},
            **self._limits(), "IPv4Forwarding": True,
            "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
            "NGoroutines": 0, "SystemTime": rfc3339_ns(), "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs" if self.cfg.cgroup_parent else "none", "CgroupVersion": cgroup_version(),
            "NEventsListener": self.events.listeners(),
            "KernelVersion": platform.release(), "OperatingSystem": osname, "OSVersion": "",
            "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": self._registry_config(),
            "NCPU": os.cpu_count() or 1, "MemTotal": host_memory(), "DockerRootDir": self.cfg.data_root,
            "Name": platform.node(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
            "Runtimes": {"runc": {"path": self.cfg.runc}}, "DefaultRuntime": "runc",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": self.runc_version()},
            "InitCommit": {"ID": ""}, "SecurityOptions": ["name=seccomp,profile=builtin",
                                                          *(["name=rootless"] if self.cfg.rootless else [])],
            "Warnings": self._warnings() or None,
        }

    def _limits(self) -> dict[str, bool]:
        """Which limits containers can get: all with cgroups of our own, the delegated controllers' in rootless mode."""
        have = self.cfg.cgroup_controllers
        if not self.cfg.cgroup_parent:
            have = frozenset()

        def has(controller: str) -> bool:
            return have is None or controller in have
        return {"MemoryLimit": has("memory"), "SwapLimit": False, "CpuCfsPeriod": has("cpu"),
                "CpuCfsQuota": has("cpu"), "CPUShares": has("cpu"), "CPUSet": has("cpuset"), "PidsLimit": has("pids")}

    def _warnings(self) -> list[str]:
        """dockerd's wording for a rootless daemon without cgroups, and what setting up rootless mode found."""
        out = [f"WARNING: {w}" for w in self.cfg.warnings]
        if self.cfg.rootless and not self.cfg.cgroup_parent:
            out.append("WARNING: Running in rootless-mode without cgroups. " + (
                "To enable cgroups in rootless-mode, you need to boot the system in cgroup v2 mode."
                if cgroup_version() == "1" else "Systemd is required to enable cgroups in rootless-mode."))
        return out

    def _registry_config(self) -> dict[str, Any]:
        """As dockerd: CIDR entries (and loopback) under InsecureRegistryCIDRs, host:port entries as index configs."""
        cidrs, hosts = list(DEFAULT_INSECURE_CIDRS), list[str]()
        for entry in self.cfg.insecure_registries:
            (cidrs if "/" in entry else hosts).append(entry)
        mirrors = list(self.cfg.registry_mirrors)
        index = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}}
        for host in hosts:
            index[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
        return {"InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": mirrors}

    def df(self) -> dict[str, Any]:
        """`docker system df` without its Containers and Volumes, which the API adds from their services.

        As dockerd counts it: the images `docker images` lists (intermediate
        build images are part of their children), each layer counted once in
        LayersSize however many images share it, and SharedSize the bytes of an
        image's layers another listed image uses too; the CLI derives the
        reclaimable space from these.
        """
        images = self.images.summaries()
        sizes = self.layers.sizes()
        configs = self.images.configs()
        chains = {i["Id"]: chain_ids(configs.get(i["Id"], {}).get("rootfs", {}).get("diff_ids") or []) for i in images}
        users = collections.Counter(c for cs in chains.values() for c in set(cs))
        for i in images:
            i["Containers"] = sum(len(x) for x in self.containers.image_usage(i["Id"]))
            i["SharedSize"] = sum(sizes.get(c, 0) for c in chains[i["Id"]] if users[c] > 1)
        layers_size = sum(sizes.get(c, 0) for c in users)
        return {"LayersSize": layers_size, "Images": images, "BuildCache": []}
