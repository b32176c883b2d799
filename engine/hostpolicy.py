"""What an API client may ask of the host: Docker's answer is "anything", a host policy narrows it.

pydockd keeps Docker's behaviour (`OPEN`): whoever reaches its socket is root
on the host anyway. The Jupyter extension hands its routes a `NoHostAccess`
instead, because a Jupyter token should not make its holder root on the host:
then containers cannot be privileged, share the host's namespaces, get host
devices or capabilities beyond Docker's default set, or bind-mount host paths
outside the Jupyter server's root directory; the same holds for exec,
volumes with mount options and builds. Container update cannot change any
of these (it only changes resources and the restart policy), so it needs no
check.

The checks run at the API edge on the decoded request, before any service
sees it; a request the engine would refuse as malformed is left to the engine,
which answers 400 with Docker's message.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Callable

from engine.errors import Forbidden, InvalidParameter
from engine.runtime.spec import DEFAULT_CAPS, normalize_caps
from engine.types.container import ContainerCreateRequest, ExecConfig, HostConfig, Mount
from engine.types.volume import VolumeCreateRequest
from engine.volume import mountspec

NAMESPACE_MODES = ("pid_mode", "ipc_mode", "network_mode", "userns_mode", "uts_mode")
BIND_FLAGS = {"bind", "rbind"}
MAX_SHARING_DEPTH = 8
# a container's HostConfig by reference, None when there is no such container
HostConfigOf = Callable[[str], HostConfig | None]


class HostAccessRefused(Forbidden):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class HostPolicy:
    """Docker's behaviour: every request may use the host."""

    def check_container_create(self, req: ContainerCreateRequest) -> None:
        """`POST /containers/create`."""

    def check_container_use(self, host: Callable[[], HostConfig | None]) -> None:
        """Exec, attach, start, restart and copying files in: `host()` gives the container's HostConfig.

        A container made with host access (by pydockd on the same data root,
        or while host access was allowed) would hand that access on.
        """

    def check_container_sharing(self, req: ContainerCreateRequest, host_of: HostConfigOf) -> None:
        """`POST /containers/create` again: the containers whose namespaces or volumes it would share."""

    def check_exec_create(self, req: ExecConfig) -> None:
        """`POST /containers/{id}/exec`."""

    def check_volume_create(self, req: VolumeCreateRequest) -> None:
        """`POST /volumes/create`."""

    def check_build(self, network_mode: str) -> None:
        """`POST /build`, from its `networkmode` parameter (the body is the context tar)."""


OPEN = HostPolicy()


class NoHostAccess(HostPolicy):
    """Refuses (403) every request that would reach the host beyond `root_dir`.

    `where` and `setting` only shape the message, e.g. "this Jupyter server"
    and "PydockExtension.allow_host_access", so the user learns how to allow it.
    """

    def __init__(self, root_dir: str, where: str, setting: str) -> None:
        self.root_dir = os.path.realpath(root_dir)
        self.where = where
        self.setting = setting

    def _refuse(self, what: str) -> HostAccessRefused:
        return HostAccessRefused(f"host access is disabled in {self.where}: {what} "
                                 f"(set {self.setting} = True to allow)", what)

    def check_container_create(self, req: ContainerCreateRequest) -> None:
        self._check_host_config(req.host_config)

    def _check_host_config(self, host: HostConfig) -> None:
        if host.privileged:
            raise self._refuse("Privileged containers are not allowed")
        for attr in NAMESPACE_MODES:
            if getattr(host, attr) == "host":
                raise self._refuse(f"{_docker_name(attr)} host is not allowed")
        r = host.resources
        for key, value in (("Devices", r.devices), ("DeviceRequests", r.device_requests),
                           ("DeviceCgroupRules", r.device_cgroup_rules)):
            if value:
                raise self._refuse(f"host devices ({key}) are not allowed")
        self._check_caps(host.cap_add or [])
        for raw in host.binds or []:
            self._check_bind_spec(raw)
        for m in host.mounts or []:
            self._check_mount(m)

    def check_container_use(self, host: Callable[[], HostConfig | None]) -> None:
        config = host()
        if config is None:
            return
        try:
            self._check_host_config(config)
        except HostAccessRefused as e:
            raise self._refuse(f"the container was created with host access ({e.reason})") from None

    def check_container_sharing(self, req: ContainerCreateRequest, host_of: HostConfigOf) -> None:
        """`--network container:X` of a host-network X is the host's network; `--volumes-from X` gets X's binds.

        Followed through containers that share in turn, a few levels deep.
        """
        self._check_sharing(req.host_config, host_of, 0)

    def _check_sharing(self, host: HostConfig, host_of: HostConfigOf, depth: int) -> None:
        if depth > MAX_SHARING_DEPTH:
            return
        refs = [mode.removeprefix("container:") for mode in (getattr(host, attr) for attr in NAMESPACE_MODES)
                if mode.startswith("container:")]
        refs += [spec.split(":")[0] for spec in host.volumes_from or []]
        for ref in refs:
            other = host_of(ref)
            if other is not None:
                self.check_container_use(lambda: other)  # noqa: B023 (called at once)
                self._check_sharing(other, host_of, depth + 1)

    def check_exec_create(self, req: ExecConfig) -> None:
        if req.privileged:
            raise self._refuse("privileged exec is not allowed")

    def check_volume_create(self, req: VolumeCreateRequest) -> None:
        if req.driver in ("", "local"):
            self._check_volume_options(req.driver_opts)

    def check_build(self, network_mode: str) -> None:
        if network_mode == "host":
            raise self._refuse("builds with network mode host are not allowed")
        if network_mode.startswith("container:"):  # the build cannot tell whether that container has host access
            raise self._refuse("builds in another container's network namespace are not allowed")

    # ---- pieces -------------------------------------------------------
    def _check_caps(self, cap_add: list[str]) -> None:
        try:
            caps = normalize_caps(cap_add)
        except InvalidParameter:
            return  # the engine refuses unknown capabilities itself
        extra = [c for c in caps if c not in DEFAULT_CAPS]
        if extra:
            raise self._refuse(f"capabilities beyond Docker's default set are not allowed: {', '.join(extra)}")

    def _check_bind_spec(self, raw: str) -> None:
        try:
            mp = mountspec.parse_bind(raw)
        except InvalidParameter:
            return
        if mp.type == "bind":
            self._check_host_path(mp.source)

    def _check_mount(self, m: Mount) -> None:
        if m.type == "bind":
            if m.source.startswith("/"):  # a relative one is the engine's 400
                # the engine drops `..` lexically before runc resolves symlinks: check that very path
                self._check_host_path(posixpath.normpath(m.source))
        elif m.type == "volume":
            config = m.volume_options.driver_config if m.volume_options else None
            if config is not None and config.name in ("", "local"):
                self._check_volume_options(config.options)

    def _check_volume_options(self, opts: dict[str, str] | None) -> None:
        """The local driver mounts `device` as `type` with `o`: a bind or any real filesystem reaches the host."""
        if not opts or not opts.get("type"):
            return
        flags = (opts.get("o") or "").split(",")
        if BIND_FLAGS.intersection(flags):
            self._check_host_path(opts.get("device"))
        elif opts.get("type") != "tmpfs":
            raise self._refuse(f"volumes that mount a host device or filesystem (type={opts.get('type')}) "
                               "are not allowed")

    def _check_host_path(self, path: str | None) -> None:
        """Symlinks and `..` resolved first, so neither can lead out of the root directory."""
        if not path:
            return
        if not path.startswith("/"):
            raise self._refuse(f"bind mounts need an absolute path inside {self.root_dir}: {path}")
        real = os.path.realpath(path)
        if real != self.root_dir and not real.startswith(self.root_dir.rstrip("/") + "/"):
            raise self._refuse(f"bind mounts of host paths outside {self.root_dir} are not allowed: {path}")


def _docker_name(attr: str) -> str:
    """HostConfig's JSON name of a namespace mode attribute, as its record field declares it (pid_mode -> PidMode)."""
    return str(next(f.metadata["json"] for f in dataclasses.fields(HostConfig) if f.name == attr))
