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

The checks run at the API edge on the request as sent, before any service
sees it; a request the engine would refuse as malformed is left to the engine,
which answers 400 with Docker's message.
"""
from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import Any

from engine.errors import Forbidden, InvalidParameter
from engine.runtime.spec import DEFAULT_CAPS, normalize_caps
from engine.volume import mountspec

NAMESPACE_MODES = ("PidMode", "IpcMode", "NetworkMode", "UsernsMode", "UTSMode")
DEVICE_FIELDS = ("Devices", "DeviceRequests", "DeviceCgroupRules")
BIND_FLAGS = {"bind", "rbind"}
MAX_SHARING_DEPTH = 8


class HostAccessRefused(Forbidden):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class HostPolicy:
    """Docker's behaviour: every request may use the host."""

    def check_container_create(self, body: Any) -> None:
        """`POST /containers/create`."""

    def check_container_use(self, container: Callable[[], dict[str, Any]]) -> None:
        """Exec, attach, start, restart and copying files in: `container()` gives the container's inspect data.

        A container made with host access (by pydockd on the same data root,
        or while host access was allowed) would hand that access on.
        """

    def check_container_sharing(self, body: Any, inspect: Callable[[str], dict[str, Any]]) -> None:
        """`POST /containers/create` again: the containers whose namespaces or volumes it would share.

        `inspect` gives a container's inspect data by reference (`{}` if there is none).
        """

    def check_exec_create(self, body: Any) -> None:
        """`POST /containers/{id}/exec`."""

    def check_volume_create(self, body: Any) -> None:
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

    def check_container_create(self, body: Any) -> None:
        host = body.get("HostConfig") if isinstance(body, dict) else None
        if not isinstance(host, dict):
            return
        if host.get("Privileged"):
            raise self._refuse("Privileged containers are not allowed")
        for key in NAMESPACE_MODES:
            if host.get(key) == "host":
                raise self._refuse(f"{key} host is not allowed")
        for key in DEVICE_FIELDS:
            if host.get(key):
                raise self._refuse(f"host devices ({key}) are not allowed")
        self._check_caps(host.get("CapAdd"))
        binds = host.get("Binds")
        for raw in binds if isinstance(binds, list) else []:
            self._check_bind_spec(raw)
        mounts = host.get("Mounts")
        for m in mounts if isinstance(mounts, list) else []:
            self._check_mount(m)

    def check_container_use(self, container: Callable[[], dict[str, Any]]) -> None:
        try:
            self.check_container_create(container())
        except HostAccessRefused as e:
            raise self._refuse(f"the container was created with host access ({e.reason})") from None

    def check_container_sharing(self, body: Any, inspect: Callable[[str], dict[str, Any]],
                                depth: int = 0) -> None:
        """`--network container:X` of a host-network X is the host's network; `--volumes-from X` gets X's binds.

        Followed through containers that share in turn, a few levels deep.
        """
        host = body.get("HostConfig") if isinstance(body, dict) else None
        if not isinstance(host, dict) or depth > MAX_SHARING_DEPTH:
            return
        refs = [mode.removeprefix("container:") for mode in (host.get(key) for key in NAMESPACE_MODES)
                if isinstance(mode, str) and mode.startswith("container:")]
        volumes_from = host.get("VolumesFrom")
        refs += [spec.split(":")[0] for spec in volumes_from if isinstance(spec, str)] \
            if isinstance(volumes_from, list) else []
        for ref in refs:
            other = inspect(ref)
            self.check_container_use(lambda: other)  # noqa: B023 (called at once)
            self.check_container_sharing(other, inspect, depth + 1)

    def check_exec_create(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("Privileged"):
            raise self._refuse("privileged exec is not allowed")

    def check_volume_create(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("Driver") in (None, "", "local"):
            self._check_volume_options(body.get("DriverOpts"))

    def check_build(self, network_mode: str) -> None:
        if network_mode == "host":
            raise self._refuse("builds with network mode host are not allowed")

    # ---- pieces -------------------------------------------------------
    def _check_caps(self, cap_add: Any) -> None:
        if not isinstance(cap_add, list) or not all(isinstance(c, str) for c in cap_add):
            return
        try:
            caps = normalize_caps(cap_add)
        except InvalidParameter:
            return  # the engine refuses unknown capabilities itself
        extra = [c for c in caps if c not in DEFAULT_CAPS]
        if extra:
            raise self._refuse(f"capabilities beyond Docker's default set are not allowed: {', '.join(extra)}")

    def _check_bind_spec(self, raw: Any) -> None:
        if not isinstance(raw, str):
            return
        try:
            mp = mountspec.parse_bind(raw)
        except InvalidParameter:
            return
        if mp["Type"] == "bind":
            self._check_host_path(mp["Source"])

    def _check_mount(self, m: Any) -> None:
        if not isinstance(m, dict):
            return
        if m.get("Type") == "bind":
            source = m.get("Source")
            if isinstance(source, str) and source.startswith("/"):  # a relative one is the engine's 400
                # the engine drops `..` lexically before runc resolves symlinks: check that very path
                self._check_host_path(posixpath.normpath(source))
        elif m.get("Type") == "volume":
            opts = m.get("VolumeOptions")
            config = opts.get("DriverConfig") if isinstance(opts, dict) else None
            if isinstance(config, dict) and config.get("Name") in (None, "", "local"):
                self._check_volume_options(config.get("Options"))

    def _check_volume_options(self, opts: Any) -> None:
        """The local driver mounts `device` as `type` with `o`: a bind or any real filesystem reaches the host."""
        if not isinstance(opts, dict) or not opts.get("type"):
            return
        flags = str(opts.get("o") or "").split(",")
        if BIND_FLAGS.intersection(flags):
            self._check_host_path(opts.get("device"))
        elif opts.get("type") != "tmpfs":
            raise self._refuse(f"volumes that mount a host device or filesystem (type={opts.get('type')}) "
                               "are not allowed")

    def _check_host_path(self, path: Any) -> None:
        """Symlinks and `..` resolved first, so neither can lead out of the root directory."""
        if not isinstance(path, str) or not path:
            return
        if not path.startswith("/"):
            raise self._refuse(f"bind mounts need an absolute path inside {self.root_dir}: {path}")
        real = os.path.realpath(path)
        if real != self.root_dir and not real.startswith(self.root_dir.rstrip("/") + "/"):
            raise self._refuse(f"bind mounts of host paths outside {self.root_dir} are not allowed: {path}")
