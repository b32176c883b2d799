"""Docker's mount syntaxes parsed into mount points, with Docker's validation and messages.

A container's mount points come from four HostConfig fields (`Binds`,
`Mounts`, `Tmpfs`, `VolumesFrom`) and from the anonymous volumes that image
and config `Volumes` ask for. Everything here is a pure function of the
request (save the existence check of `--mount` bind sources), so the
precedence and error rules are unit-tested without a daemon; the volume
service turns the result into volumes and OCI mounts.

A mount point is a dict: Type, Name, Source, Destination, Driver, Mode, RW,
Propagation (the inspect fields) plus Anonymous, CopyData, CreateSource,
NonRecursive, ReadOnlyNonRecursive, TmpfsData and VolumeOptions (what starting the container needs).
"""
from __future__ import annotations

import os
import posixpath
from typing import Any

from engine.errors import InvalidParameter, Unsupported

PUBLIC_KEYS = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")
RW_MODES = {"rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"}
LABEL_MODES = {"z", "Z"}
PROPAGATIONS = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
COPY_MODES = {"nocopy"}
DEFAULT_PROPAGATION = "rprivate"
TMPFS_FLAG_OPTIONS = {"exec", "noexec"}


def mount_point(type_: str, destination: str, **fields: Any) -> dict[str, Any]:
    mp: dict[str, Any] = {"Type": type_, "Name": "", "Source": "", "Destination": destination, "Driver": "",
                          "Mode": "", "RW": True, "Propagation": "", "Anonymous": False, "CopyData": False,
                          "CreateSource": False, "NonRecursive": False, "ReadOnlyNonRecursive": False,
                          "TmpfsData": "", "VolumeOptions": {}}
    mp.update(fields)
    return mp


def public(mp: dict[str, Any]) -> dict[str, Any]:
    """The inspect/`ps` shape (Go's MountPoint: Name and Driver are omitted when empty)."""
    return {k: mp[k] for k in PUBLIC_KEYS if k not in ("Name", "Driver") or mp[k]}


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
def parse_bind(raw: str) -> dict[str, Any]:
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
        return mount_point("bind", dest, Source=posixpath.normpath(source), Mode=mode, RW=rw, Propagation=prop,
                           CreateSource=True, ReadOnlyNonRecursive="ro-non-recursive" in opts)
    return mount_point("volume", dest, Name=source, Mode=mode or "z", RW=rw, Driver="local",
                       CopyData="nocopy" not in opts)


# ---- Mounts: API mount objects -----------------------------------------
def parse_mount(m: Any) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise InvalidParameter("invalid Mounts: each mount must be an object")
    type_ = m.get("Type") or ""
    source, target = m.get("Source") or "", m.get("Target") or ""
    if not all(isinstance(v, str) for v in (type_, source, target)):
        raise InvalidParameter("invalid Mounts: Type, Source and Target must be strings")

    def fail(msg: str) -> InvalidParameter:
        return InvalidParameter(f'invalid mount config for type "{type_}": {msg}')

    for key, owner in (("BindOptions", "bind"), ("VolumeOptions", "volume"), ("TmpfsOptions", "tmpfs"),
                       ("ImageOptions", "image"), ("ClusterOptions", "cluster")):
        if m.get(key) is not None and type_ != owner:
            raise fail(f"field {key} must not be specified")
    if not target:
        raise fail("field Target must not be empty")
    try:
        dest = _check_destination(target)
    except ValueError as e:
        raise fail(str(e)) from None
    ro = bool(m.get("ReadOnly"))
    if type_ == "bind":
        return _mount_bind(m, source, dest, ro, fail)
    if type_ == "volume":
        opts = m.get("VolumeOptions") or {}
        if not isinstance(opts, dict):
            raise fail("invalid VolumeOptions")
        if opts.get("Subpath"):
            if not source:
                raise fail("must not set Subpath when using anonymous volumes")
            raise Unsupported("VolumeOptions.Subpath is not supported yet")
        driver = ((opts.get("DriverConfig") or {}).get("Name") or "local")
        return mount_point("volume", dest, Name=source, Driver=driver, Mode="z", RW=not ro, Anonymous=not source,
                           CopyData=not opts.get("NoCopy"), VolumeOptions=opts)
    if type_ == "tmpfs":
        if source:
            raise fail("field Source must not be specified")
        try:
            data = tmpfs_options(m.get("TmpfsOptions") or {}, ro)
        except ValueError as e:
            raise fail(str(e)) from None
        return mount_point("tmpfs", dest, RW=not ro, TmpfsData=data)
    if type_ in ("image", "npipe", "cluster"):
        raise Unsupported(f"mount type {type_!r} is not supported yet")
    raise fail("mount type unknown")


def _mount_bind(m: dict[str, Any], source: str, dest: str, ro: bool, fail: Any) -> dict[str, Any]:
    if not source:
        raise fail("field Source must not be empty")
    opts = m.get("BindOptions") or {}
    if not isinstance(opts, dict):
        raise fail("invalid BindOptions")
    prop = opts.get("Propagation") or ""
    if prop and prop not in PROPAGATIONS:
        raise fail(f"invalid propagation mode: {prop}")
    if not source.startswith("/"):
        raise fail(f"invalid mount path: '{source}' mount path must be absolute")
    for key in ("ReadOnlyNonRecursive", "ReadOnlyForceRecursive"):
        if opts.get(key) and not ro:
            raise InvalidParameter(f"mount options conflict: !ReadOnly && BindOptions.{key}")
    create = bool(opts.get("CreateMountpoint"))
    if not create and not os.path.lexists(source):
        raise fail(f"bind source path does not exist: {source}")
    return mount_point("bind", dest, Source=posixpath.normpath(source), RW=not ro,
                       Propagation=prop or DEFAULT_PROPAGATION, CreateSource=create,
                       NonRecursive=bool(opts.get("NonRecursive")),
                       ReadOnlyNonRecursive=bool(opts.get("ReadOnlyNonRecursive")))


def tmpfs_options(opts: dict[str, Any], read_only: bool) -> str:
    """Docker's ConvertTmpfsOptions: `ro`, `mode=<octal>`, `size=<n>[kmg]`, then exec/noexec."""
    out = ["ro"] if read_only else []
    mode, size = opts.get("Mode") or 0, opts.get("SizeBytes") or 0
    if not isinstance(mode, int) or not isinstance(size, int) or size < 0:
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
    for opt in opts.get("Options") or []:
        if not isinstance(opt, list) or not 1 <= len(opt) <= 2:
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
def oci_mount(mp: dict[str, Any], source: str) -> dict[str, Any]:
    """One mount point as an OCI mount; `source` is the host path (a volume's data directory)."""
    if mp["Type"] == "tmpfs":
        return tmpfs_oci(mp["Destination"], mp["TmpfsData"])
    opts = ["bind" if mp["NonRecursive"] else "rbind", "rw" if mp["RW"] else "ro"]
    if not mp["RW"] and not mp["ReadOnlyNonRecursive"]:
        opts.append("rro")  # Docker (API >= 1.44): submounts of a read-only bind are read-only too
    opts.append(mp["Propagation"] or DEFAULT_PROPAGATION)
    return {"destination": mp["Destination"], "type": "bind", "source": source, "options": opts}


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
