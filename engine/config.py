"""Daemon configuration: where state lives and which binaries to use."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from engine.runtime import oci

SPARES_NAME = ".spare"  # in the containers directory: no container ID looks like it


@dataclass(frozen=True)
class EngineConfig:
    """Paths and tools the engine uses.

    `data_root` survives reboots (images, container layers, logs, SQLite);
    `exec_root` is tmpfs-like runtime state (runc state, shim sockets) that is
    rebuilt on boot, mirroring dockerd's /var/lib/docker vs /var/run/docker.
    """

    data_root: str = "/var/lib/pydock"
    exec_root: str = "/run/pydock"
    runc: str = field(default_factory=lambda: oci.find(oci.RUNC) or "/usr/sbin/runc")
    # crun's binary when it is installed and can run here (engine/runtime/oci.py), else "": not offered
    crun: str = field(default_factory=oci.usable_crun)
    # the OCI runtime of containers created without `--runtime`, as configured; "": `chosen_runtime` picks
    default_runtime: str = ""
    init_binary: str = field(default_factory=lambda: shutil.which("tini-static") or "/usr/bin/tini-static")
    # containers' cgroups go below this path of the cgroup tree; "" gives them none (rootless without
    # delegated cgroups: runc then leaves them in the daemon's own cgroup and no limit can be applied)
    cgroup_parent: str = "pydock"
    # the cgroup controllers containers' limits may use; None: all the host has (root mode)
    cgroup_controllers: frozenset[str] | None = None
    # why a limit needing a controller outside `cgroup_controllers` is refused
    cgroup_limits_reason: str = ""
    # rootless mode: the daemon is root only inside a user namespace of an unprivileged user (engine/rootless)
    rootless: bool = False
    # how layers are stacked into root filesystems: "overlay2" (kernel overlayfs) or "fuse-overlayfs"
    # (engine/linux/overlay.py; pydockd chooses at start)
    storage_driver: str = "overlay2"
    # the network namespace that holds the bridges (rootless: the namespace holder's); "" is the daemon's own
    engine_netns: str = ""
    # what setting the daemon up found wrong but could live with (shown by `docker info`)
    warnings: tuple[str, ...] = ()
    # registries that may be reached over plain HTTP (host[:port] or CIDR), besides loopback
    insecure_registries: tuple[str, ...] = ()
    # Docker Hub mirrors (URLs), tried in order before Docker Hub itself for pulls
    registry_mirrors: tuple[str, ...] = ()
    # per-registry TLS trust, as /etc/docker/certs.d: <certs_dir>/<host:port>/{*.crt, *.cert, *.key}
    certs_dir: str = "/etc/pydock/certs.d"
    # the default bridge's gateway address and prefix (dockerd's --bip); "" picks a free pool, 172.29.0.0/16 first
    bip: str = ""
    # the per-container monitor: "c" (engine/runtime/monitor.c, compiled on first use; the Python one when
    # no compiler is there) or "python" (engine/runtime/shim.py)
    monitor: str = "c"

    @property
    def limit_controllers(self) -> frozenset[str] | None:
        """The cgroup controllers containers' limits may use: None for all (root), none without cgroups."""
        return self.cgroup_controllers if self.cgroup_parent else frozenset()

    @property
    def db_path(self) -> str:
        return os.path.join(self.data_root, "pydock.db")

    @property
    def blobs_dir(self) -> str:
        return os.path.join(self.data_root, "blobs", "sha256")

    @property
    def layers_dir(self) -> str:
        return os.path.join(self.data_root, "layers")

    @property
    def containers_dir(self) -> str:
        return os.path.join(self.data_root, "containers")

    @property
    def container_spares_dir(self) -> str:
        """Removed containers' directories kept for new ones (engine/container/dirs.py): inside
        `containers_dir`, so that a rename moves them."""
        return os.path.join(self.containers_dir, SPARES_NAME)

    @property
    def containers_run_dir(self) -> str:
        """Containers' files that every start writes afresh (the OCI bundle's config.json, /etc/hosts,
        hostname, resolv.conf): in the exec root, in memory (engine.py), as podman keeps them in its runroot;
        on a disk each start would allocate their inodes again."""
        return os.path.join(self.exec_root, "containers")

    @property
    def tmp_dir(self) -> str:
        return os.path.join(self.data_root, "tmp")

    @property
    def runtimes(self) -> dict[str, str]:
        """The OCI runtimes containers may choose: name -> binary."""
        return {oci.RUNC: self.runc, **({oci.CRUN: self.crun} if self.crun and not self._crun_without_cgroups else {})}

    @property
    def _crun_without_cgroups(self) -> bool:
        # crun (1.8) reads the container's freezer state at every exec, which fails for a container that has
        # no cgroup of its own (rootless without a delegated cgroup v2 subtree); runc copes
        return self.rootless and not self.cgroup_parent

    def why_unusable(self, runtime: str) -> str:
        """Why this daemon's containers cannot run under `runtime`; "" when they can."""
        if runtime == oci.CRUN and self._crun_without_cgroups:
            return ("crun cannot exec into containers without a cgroup of their own (rootless mode without a "
                    "delegated cgroup v2 subtree)")
        return oci.why_unusable(runtime, self.runtimes.get(runtime) or oci.find(runtime))

    @property
    def chosen_runtime(self) -> str:
        """The OCI runtime of containers created without `--runtime`: the configured one, else crun where
        this daemon offers it (its calls for a start and removal take about half of runc's time; README,
        Performance), else runc, Docker's default."""
        return self.default_runtime or (oci.CRUN if oci.CRUN in self.runtimes else oci.RUNC)

    def runtime_root(self, name: str) -> str:
        """Where runtime `name` keeps its containers' state."""
        return os.path.join(self.exec_root, name)

    @property
    def runc_root(self) -> str:
        return self.runtime_root(oci.RUNC)

    @property
    def shims_dir(self) -> str:
        return os.path.join(self.exec_root, "s")

    def ensure_dirs(self) -> None:
        for path in (self.data_root, self.blobs_dir, self.layers_dir, self.containers_dir, self.container_spares_dir,
                     self.tmp_dir, self.exec_root, self.containers_run_dir, self.shims_dir,
                     *map(self.runtime_root, self.runtimes)):
            os.makedirs(path, mode=0o710, exist_ok=True)
