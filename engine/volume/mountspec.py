"""Docker's mount syntaxes parsed into mount points, with Docker's validation and messages.

A container's mount points come from four HostConfig fields (`Binds`,
`Mounts`, `Tmpfs`, `VolumesFrom`) and from the anonymous volumes that image
and config `Volumes` ask for. Everything here is a pure function of the
request (save the existence check of `--mount` bind sources), so the
precedence and error rules are unit-tested without a daemon; the volume
service turns the result into volumes and OCI mounts.

A mount point is a `MountPoint`: the inspect fields plus what starting the
container needs.
"""
from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidParameter, Unsupported
from engine.types.container import BindOptions, Mount, TmpfsOptions, VolumeOptions
from engine.volume import subpath
from engine.wire import BOOL, STRING, Ptr, wfield

RW_MODES = {"rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"}
LABEL_MODES = {"z", "Z"}
PROPAGATIONS = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
COPY_MODES = {"nocopy"}
DEFAULT_PROPAGATION = "rprivate"
TMPFS_FLAG_OPTIONS = {"exec", "noexec"}


@dataclass
class MountPoint:
    """One of a container's mounts: inspect's Mounts entry, plus what mounting it needs."""

    type: str = wfield("Type", STRING)  # bind, volume or tmpfs
    name: str = wfield("Name", STRING)  # a volume's name
    source: str = wfield("Source", STRING)  # a bind's host path (a volume's is the volume service's to know)
    destination: str = wfield("Destination", STRING)
    driver: str = wfield("Driver", STRING)
    mode: str = wfield("Mode", STRING)
    rw: bool = wfield("RW", BOOL, default=lambda: True)
    propagation: str = wfield("Propagation", STRING)
    anonymous: bool = wfield("Anonymous", BOOL)  # an anonymous volume: removed with `rm -v`
    copy_data: bool = wfield("CopyData", BOOL)  # fill a new volume from the image's directory
    create_source: bool = wfield("CreateSource", BOOL)  # create a missing bind source
    non_recursive: bool = wfield("NonRecursive", BOOL)
    read_only_non_recursive: bool = wfield("ReadOnlyNonRecursive", BOOL)
    tmpfs_data: str = wfield("TmpfsData", STRING)  # tmpfs mount options
    volume_options: VolumeOptions | None = wfield("VolumeOptions", Ptr(VolumeOptions))

    def public(self) -> dict[str, Any]:
        """The inspect/`ps` shape (Go's MountPoint: Name and Driver are omitted when empty)."""
        out: dict[str, Any] = {"Type": self.type, "Name": self.name, "Source": self.source,
                               "Destination": self.destination, "Driver": self.driver, "Mode": self.mode,
                               "RW": self.rw, "Propagation": self.propagation}
        return {k: v for k, v in out.items() if k not in ("Name", "Driver") or v}


# ---- validation helpers ------------------------------------------------
def _check_destination(path: str) -> str:
    if posixpath.normpath(path.replace("\\", "/")) in ("/", "//"):
        raise ValueError("invalid specification: destination can't be '/'")
    if not path.replace("\\", "/").startswith("/"):
        raise ValueError(f"invalid mount path: '{path}' mount path must be absolute")
    return posixpath.normpath(path)


def _mode_options(mode: str) -> list[str] | None:
    """The options of a Binds mode string, or None when Docker would reject it."""
    if mode == "":
        return []
    opts = mode.split(",")
    counts = [sum(o in group for o in opts)
              for group in (RW_MODES, LABEL_MODES, PROPAGATIONS, COPY_MODES, CONSISTENCY_MODES)]
    if sum(counts) != len(opts) or any(c > 1 for c in counts):
        return None
    return opts


def destination(path: str) -> str:
    """A cleaned absolute container path for Tmpfs and Volumes keys; Docker's 400 otherwise."""
    try:
        return _check_destination(path)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


# ---- Binds: "src:dst[:mode]" -------------------------------------------
def parse_bind(raw: str) -> MountPoint:
    invalid = f"invalid volume specification: '{raw}'"
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3 or len(parts) == 1:
        raise InvalidParameter(invalid)
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if len(parts) == 2 and _mode_options(target) is not None:
        raise InvalidParameter(invalid)  # "/foo:rw": a mode without a destination
    opts = _mode_options(mode)
    if opts is None:
        raise InvalidParameter(f"invalid mode: {mode}")
    is_bind = source.startswith("/")
    kind = "bind" if is_bind else "volume"
    try:
        dest = _check_destination(target)
    except ValueError as e:
        raise InvalidParameter(f'{invalid}: invalid mount config for type "{kind}": {e}') from None
    rw = "ro" not in opts and not any(o in ("ro-non-recursive", "ro-force-recursive", "rro") for o in opts)
    if is_bind:
        prop = next((o for o in opts if o in PROPAGATIONS), DEFAULT_PROPAGATION)
        return MountPoint("bind", source=posixpath.normpath(source), destination=dest, mode=mode, rw=rw,
                          propagation=prop, create_source=True, read_only_non_recursive="ro-non-recursive" in opts)
    return MountPoint("volume", name=source, destination=dest, mode=mode or "z", rw=rw, driver="local",
                      copy_data="nocopy" not in opts)


# ---- Mounts: API mount objects -----------------------------------------
def parse_mount(m: Mount) -> MountPoint:
    type_, source, target = m.type, m.source, m.target

    def fail(msg: str) -> InvalidParameter:
        return InvalidParameter(f'invalid mount config for type "{type_}": {msg}')

    for key, value, owner in (("BindOptions", m.bind_options, "bind"), ("VolumeOptions", m.volume_options, "volume"),
                              ("TmpfsOptions", m.tmpfs_options, "tmpfs"), ("ImageOptions", m.image_options, "image"),
                              ("ClusterOptions", m.cluster_options, "cluster")):
        if value is not None and type_ != owner:
            raise fail(f"field {key} must not be specified")
    if not target:
        raise fail("field Target must not be empty")
    try:
        dest = _check_destination(target)
    except ValueError as e:
        raise fail(str(e)) from None
    ro = m.read_only
    if type_ == "bind":
        return _mount_bind(m.bind_options or BindOptions(), source, dest, ro, fail)
    if type_ == "volume":
        opts = m.volume_options or VolumeOptions()
        if opts.subpath:
            if not source:
                raise fail("must not set Subpath when using anonymous volumes")
            try:
                subpath.check(opts.subpath)
            except InvalidParameter as e:
                raise fail(e.message) from None
        driver = (opts.driver_config.name if opts.driver_config else "") or "local"
        return MountPoint("volume", name=source, destination=dest, driver=driver, mode="z", rw=not ro,
                          anonymous=not source, copy_data=not opts.no_copy, volume_options=opts)
    if type_ == "tmpfs":
        if source:
            raise fail("field Source must not be specified")
        try:
            data = tmpfs_options(m.tmpfs_options or TmpfsOptions(), ro)
        except ValueError as e:
            raise fail(str(e)) from None
        return MountPoint("tmpfs", destination=dest, rw=not ro, tmpfs_data=data)
    if type_ in ("image", "npipe", "cluster"):
        raise Unsupported(f"mount type {type_!r} is not supported yet")
    raise fail("mount type unknown")


def _mount_bind(opts: BindOptions, source: str, dest: str, ro: bool,
                fail: Callable[[str], InvalidParameter]) -> MountPoint:
    if not source:
        raise fail("field Source must not be empty")
    prop = opts.propagation
    if prop and prop not in PROPAGATIONS:
        raise fail(f"invalid propagation mode: {prop}")
    if not source.startswith("/"):
        raise fail(f"invalid mount path: '{source}' mount path must be absolute")
    for key, value in (("ReadOnlyNonRecursive", opts.read_only_non_recursive),
                       ("ReadOnlyForceRecursive", opts.read_only_force_recursive)):
        if value and not ro:
            raise InvalidParameter(f"mount options conflict: !ReadOnly && BindOptions.{key}")
    if not opts.create_mountpoint and not os.path.lexists(source):
        raise fail(f"bind source path does not exist: {source}")
    return MountPoint("bind", source=posixpath.normpath(source), destination=dest, rw=not ro,
                      propagation=prop or DEFAULT_PROPAGATION, create_source=opts.create_mountpoint,
                      non_recursive=opts.non_recursive, read_only_non_recursive=opts.read_only_non_recursive)


def tmpfs_options(opts: TmpfsOptions, read_only: bool) -> str:
    """Docker's ConvertTmpfsOptions: `ro`, `mode=<octal>`, `size=<n>[kmg]`, then exec/noexec."""
    out = ["ro"] if read_only else []
    mode, size = opts.mode, opts.size_bytes
    if size < 0:
        raise ValueError("invalid TmpfsOptions")
    if mode:
        out.append(f"mode={mode:o}")
    if size:
        for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                out.append(f"size={size // div}{suffix}")
                break
        else:
            out.append(f"size={size}")
    for opt in opts.options or []:
        if not 1 <= len(opt) <= 2:
            raise ValueError("invalid option array length")
        if opt[0] not in TMPFS_FLAG_OPTIONS:
            raise ValueError(f"invalid option: {opt[0]}")
        out.append("=".join(opt))
    return ",".join(out)


# ---- VolumesFrom: "container[:ro|rw]" ------------------------------------
def parse_volumes_from(spec: str) -> tuple[str, bool]:
    """(container reference, read-write) of one VolumesFrom entry."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, True
    opts = _mode_options(mode)
    if opts is None or any(o in PROPAGATIONS or o in COPY_MODES for o in opts):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, "ro" not in opts


# ---- OCI -----------------------------------------------------------------
def oci_mount(mp: MountPoint, source: str) -> dict[str, Any]:
    """One mount point as an OCI mount; `source` is the host path (a volume's data directory)."""
    if mp.type == "tmpfs":
        return tmpfs_oci(mp.destination, mp.tmpfs_data)
    opts = ["bind" if mp.non_recursive else "rbind", "rw" if mp.rw else "ro"]
    if not mp.rw and not mp.read_only_non_recursive:
        opts.append("rro")  # Docker (API >= 1.44): submounts of a read-only bind are read-only too
    opts.append(mp.propagation or DEFAULT_PROPAGATION)
    return {"destination": mp.destination, "type": "bind", "source": source, "options": opts}


def locked_flags(source: str) -> list[str]:
    """The nosuid/nodev/noexec flags of the filesystem `source` is on, as mount options.

    A bind mount keeps them by itself, and runc re-applies them when it
    remounts one; crun (1.8) remounts a bind with only the options it is
    given, so they are given: a `noexec` tmpfs volume stays noexec."""
    try:
        flags = os.statvfs(source).f_flag
    except OSError:
        return []  # the runtime's bind reports what is wrong with the source
    return [word for bit, word in ((os.ST_NOSUID, "nosuid"), (os.ST_NODEV, "nodev"), (os.ST_NOEXEC, "noexec"))
            if flags & bit]


def tmpfs_oci(destination: str, data: str) -> dict[str, Any]:
    """Docker's tmpfs defaults (noexec, nosuid, nodev), where a later option overrides an earlier flag."""
    merged: list[str] = []
    for opt in ["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION, *[o for o in data.split(",") if o]]:
        key = opt.partition("=")[0]
        opposite = {"exec": "noexec", "noexec": "exec", "suid": "nosuid", "nosuid": "suid", "dev": "nodev",
                    "nodev": "dev", "ro": "rw", "rw": "ro"}.get(key)
        merged = [o for o in merged if o.partition("=")[0] not in (key, opposite)]
        merged.append(opt)
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": merged}


def sort_mounts(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parents before children (fewest path components first), so no mount hides a later one."""
    return sorted(mounts, key=lambda m: posixpath.normpath(m["destination"]).count("/"))
