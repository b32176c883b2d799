"""Docker's JSON for `docker version`, `docker info` and the images part of `docker system df`.

The engine's facts come from the system service as records; what describes
this build and host (versions, kernel, CPUs) is read here, as dockerd's
API layer does.
"""
from __future__ import annotations

import os
import platform
from typing import Any

from engine import __version__
from engine.api.image_json import summary_json
from engine.container.stats import host_memory
from engine.image.service import ARCH
from engine.system import DiskUsage, RegistrySettings, SystemFacts
from engine.timeutil import rfc3339_ns
from pydock_common.apiversion import API_VERSION, MIN_API_VERSION

Json = dict[str, Any]


def version_json(runc_version: str) -> Json:
    """GET /version."""
    go = "python" + platform.python_version()
    return {
        "Platform": {"Name": "pydock"},
        "Components": [
            {"Name": "Engine", "Version": __version__,
             "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                         "Os": "linux", "Arch": ARCH, "KernelVersion": platform.release(),
                         "GoVersion": go, "GitCommit": "", "BuildTime": "", "Experimental": "false"}},
            {"Name": "runc", "Version": runc_version, "Details": {"GitCommit": ""}},
        ],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": go, "Os": "linux", "Arch": ARCH,
        "KernelVersion": platform.release(), "BuildTime": "",
    }


def info_json(f: SystemFacts) -> Json:
    """GET /info."""
    lim = f.limits
    return {
        "ID": f.daemon_id, "Containers": f.containers, "ContainersRunning": f.running,
        "ContainersPaused": f.paused, "ContainersStopped": f.containers - f.running - f.paused,
        "Images": f.images,
        "Driver": f.storage_driver, "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": lim.memory, "SwapLimit": False, "CpuCfsPeriod": lim.cpu, "CpuCfsQuota": lim.cpu,
        "CPUShares": lim.cpu, "CPUSet": lim.cpuset, "PidsLimit": lim.pids, "IPv4Forwarding": True,
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": rfc3339_ns(), "LoggingDriver": "json-file",
        "CgroupDriver": f.cgroup_driver, "CgroupVersion": f.cgroup_version,
        "NEventsListener": f.event_listeners,
        "KernelVersion": platform.release(), "OperatingSystem": f.os_name, "OSVersion": "",
        "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": _registry_json(f.registry),
        "NCPU": os.cpu_count() or 1, "MemTotal": host_memory(), "DockerRootDir": f.data_root,
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {name: {"path": path} for name, path in f.runtimes.items()}, "DefaultRuntime": f.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": f.runc_version},
        "InitCommit": {"ID": ""}, "SecurityOptions": ["name=seccomp,profile=builtin",
                                                      *(["name=rootless"] if f.rootless else [])],
        "Warnings": f.warnings or None,
    }


def _registry_json(r: RegistrySettings) -> Json:
    """As dockerd: CIDR entries under InsecureRegistryCIDRs, host:port entries as insecure index configs."""
    index = {"docker.io": {"Name": "docker.io", "Mirrors": r.mirrors, "Secure": True, "Official": True}}
    for host in r.insecure_hosts:
        index[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
    return {"InsecureRegistryCIDRs": r.insecure_cidrs, "IndexConfigs": index, "Mirrors": r.mirrors}


def df_images_json(usage: DiskUsage) -> Json:
    """`docker system df`'s LayersSize and Images (Containers and Volumes come from their routers)."""
    return {"LayersSize": usage.layers_size, "BuildCache": [],
            "Images": [summary_json(i.image, i.containers, i.shared_size) for i in usage.images]}
